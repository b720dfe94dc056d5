"""Cameras shared out across daemons: ``--shard I/N`` runs only shard I's cameras of one YAML.

Each camera goes to the shard with the highest hash of (camera name, shard
index): rendezvous, or highest-random-weight, hashing. Every daemon computes
the same answer from the names alone, with no coordination, and going from N to
N+1 shards moves only the cameras the new shard wins, about 1/(N+1) of them,
instead of reshuffling all as ``hash % N`` would.

The shard comes from ``--shard``, else ``FER_STREAM_SHARD`` (``I/N``), else a
StatefulSet pod name ending in ``-I`` (``fer-stream-2``, from ``POD_NAME`` or
``HOSTNAME``) with ``FER_STREAM_SHARDS`` giving N.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SHARD_ENV = "FER_STREAM_SHARD"
SHARD_COUNT_ENV = "FER_STREAM_SHARDS"


class ShardError(ValueError):
    """A shard that cannot be used; the message says the expected form."""


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def runs(self, camera: str) -> bool:
        return owner(camera, self.count) == self.index

    def cameras(self, names: Iterable[str]) -> list[str]:
        return [name for name in names if self.runs(name)]


def owner(camera: str, count: int) -> int:
    """The shard (0 .. count-1) that runs ``camera``."""
    return max(range(count), key=lambda index: hashlib.sha256(f"{camera}\0{index}".encode()).digest())


def parse_shard(text: str, where: str = "--shard") -> Shard:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ShardError(f"{where} {text!r}: expected I/N, the shard index from 0 and the number of shards (e.g. 0/3)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise ShardError(f"{where} {text!r}: the index must be 0 to {max(count - 1, 0)} of {count} shard(s)")
    return Shard(index, count)


def shard_from_environment(env: Mapping[str, str] = os.environ) -> Shard | None:
    """The shard the environment names, or None (run every camera)."""
    if env.get(SHARD_ENV):
        return parse_shard(env[SHARD_ENV], SHARD_ENV)
    if env.get(SHARD_COUNT_ENV):
        pod = env.get("POD_NAME") or env.get("HOSTNAME") or ""
        ordinal = re.search(r"-(\d+)$", pod)
        if not ordinal:
            raise ShardError(f"{SHARD_COUNT_ENV} is set but the pod name {pod!r} does not end in -<ordinal> "
                             f"(a StatefulSet's); set {SHARD_ENV}=I/N instead")  # fmt: skip
        return parse_shard(f"{ordinal.group(1)}/{env[SHARD_COUNT_ENV]}", f"{SHARD_COUNT_ENV} with pod {pod}")
    return None
