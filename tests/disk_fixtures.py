"""A real filesystem that runs full: a 200 KB tmpfs mounted for one test, filled and freed on demand.

Mounting needs root (or CAP_SYS_ADMIN); where it is refused the tests that need a full disk are skipped,
saying so. The mount is detached at teardown even if a process killed by the test still holds a file on it.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

SIZE = "200k"


class TinyDisk:
    """``path``: the mounted folder. ``fill`` takes every free block; ``free`` gives them back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._filler = path / "filler"

    def fill(self) -> None:
        fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for chunk in (65536, 4096):
                try:
                    while True:
                        os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
        finally:
            os.close(fd)
        assert os.statvfs(self.path).f_bavail == 0, "the tmpfs still has free blocks"

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[TinyDisk]:
    mount_point = tmp_path / "tiny-disk"
    mount_point.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount_point)],
                              capture_output=True, text=True, timeout=30)  # fmt: skip
        problem = done.stderr.strip() if done.returncode else None
    except FileNotFoundError:
        problem = "no mount command"
    if problem is not None:
        pytest.skip(f"a full disk is a {SIZE} tmpfs, and mounting one failed ({problem}): run the tests as root")
    try:
        yield TinyDisk(mount_point)
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False, timeout=30)
