"""Sharding cameras across daemons: every camera runs exactly once, and adding a shard moves few of them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fer_stream.config.shard import Shard, ShardError, owner, parse_shard, shard_from_environment

NAMES = st.lists(st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True), min_size=1, max_size=60, unique=True)


@settings(max_examples=60, deadline=None)
@given(names=NAMES, count=st.integers(1, 8))
def test_every_camera_runs_on_exactly_one_shard(names, count):
    runs = [Shard(i, count).cameras(names) for i in range(count)]
    assert sorted(sum(runs, [])) == sorted(names)


def test_adding_a_shard_moves_about_one_in_n_plus_one_cameras():
    names = [f"camera-{i:03d}" for i in range(600)]
    for count in (1, 2, 3, 5):
        moved = sum(owner(name, count) != owner(name, count + 1) for name in names)
        assert moved <= 1.3 * len(names) / (count + 1), (count, moved)
        assert all(owner(name, count + 1) == count for name in names if owner(name, count) != owner(name, count + 1)), \
            "a camera only ever moves to the new shard"
    shares = [sum(owner(name, 4) == i for name in names) for i in range(4)]
    assert min(shares) >= 0.7 * len(names) / 4, shares


def test_the_shard_comes_from_the_flag_the_environment_or_a_statefulset_pod_name():
    assert parse_shard("2/3") == Shard(2, 3) and str(Shard(2, 3)) == "2/3"
    for bad in ("3/3", "1", "a/b", "0/0"):
        with pytest.raises(ShardError, match="expected I/N|the index must be"):
            parse_shard(bad)
    assert shard_from_environment({}) is None
    assert shard_from_environment({"FER_STREAM_SHARD": "1/4"}) == Shard(1, 4)
    assert shard_from_environment({"FER_STREAM_SHARDS": "3", "HOSTNAME": "fer-stream-2"}) == Shard(2, 3)
    with pytest.raises(ShardError, match="does not end in -<ordinal>"):
        shard_from_environment({"FER_STREAM_SHARDS": "3", "HOSTNAME": "edge-box"})


def test_check_config_says_which_cameras_a_shard_runs(tmp_path: Path, media_dir: Path):
    names = [f"cam{i}" for i in range(9)]
    config = tmp_path / "cameras.yaml"
    config.write_text("cameras:\n" + "".join(f"  - {{name: {n}, source: {media_dir / 'angry_man.mp4'}}}\n" for n in names))
    fer = Path(sys.executable).with_name("fer-stream")
    listed = []
    for index in range(3):
        done = subprocess.run([fer, "check-config", str(config), "--shard", f"{index}/3"], capture_output=True, text=True,
                              timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        line = [ln for ln in done.stdout.splitlines() if ln.startswith(f"shard {index}/3 runs")][0]
        listed += [n for n in line.split(": ", 1)[1].split(", ") if n != "none"]
    assert sorted(listed) == sorted(names)
    bad = subprocess.run([fer, "check-config", str(config), "--shard", "3/3"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "the index must be 0 to 2" in bad.stderr
