"""Where alert pictures are kept: one directory, a size cap and a retention time.

The supervisor is the directory's only writer, so the cap holds exactly: before
a picture is written, the oldest are removed until it fits. (Daemons of one
host with different config files share the default directory; each serves every
picture in it, and keeps the cap for the pictures it wrote.) Expired pictures are removed
by :meth:`SnapshotStore.sweep` (the supervisor calls it every few seconds) and
are never served, swept or not. Files are written under a temporary name and
renamed, so a reader never sees half a JPEG.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from fer_stream.messages import AlertPictures

log = logging.getLogger(__name__)

#: The only file names the store writes and serves (no path can be smuggled in).
FILE_NAME = re.compile(r"^[0-9a-f]{32}-(start|end)(-face)?\.jpg$")


class SnapshotStore:
    """Alert pictures on disk. Thread-safe: the supervisor writes, the console's threads read."""

    def __init__(self, directory: Path, *, max_bytes: int, retention_s: float, clock: Callable[[], float] = time.time) -> None:
        from fer_stream import metrics

        self.directory = directory
        self.max_bytes = max_bytes
        self.retention_s = retention_s
        self._clock = clock
        self._lock = threading.Lock()
        self._files: OrderedDict[str, tuple[float, int]] = OrderedDict()  # name -> (written at, bytes), oldest first
        self._bytes = 0
        self._m_bytes = metrics.SNAPSHOT_BYTES
        self._m_stored = metrics.SNAPSHOTS_STORED
        self._m_removed = {reason: metrics.SNAPSHOTS_REMOVED.labels(reason=reason) for reason in ("expired", "cap")}
        directory.mkdir(parents=True, exist_ok=True)
        self._load()

    def _load(self) -> None:
        """Pick up what an earlier run left, oldest first; leftovers of an interrupted write go."""
        found = []
        for entry in os.scandir(self.directory):
            if entry.name.startswith(".tmp-"):
                os.unlink(entry.path)
            elif FILE_NAME.fullmatch(entry.name) and entry.is_file():
                stat = entry.stat()
                found.append((stat.st_mtime, entry.name, stat.st_size))
        for written, name, size in sorted(found):
            self._files[name] = (written, size)
            self._bytes += size
        self.sweep()
        self._make_room(0)
        self._m_bytes.set(self._bytes)

    @property
    def bytes(self) -> int:
        with self._lock:
            return self._bytes

    def put(self, pictures: AlertPictures) -> None:
        """Keep an event's pictures, removing the oldest ones first when the cap would be passed."""
        files = [(f"{pictures.name}.jpg", pictures.frame_jpeg)]
        if pictures.face_jpeg is not None:
            files.append((f"{pictures.name}-face.jpg", pictures.face_jpeg))
        for name, data in files:
            if not FILE_NAME.fullmatch(name):
                log.warning("snapshot %r not kept: not a snapshot name", name)
                continue
            if len(data) > self.max_bytes:
                log.warning("snapshot %s not kept: %d bytes, more than the whole cap (alerts.snapshots.max_mb)", name, len(data))
                continue
            with self._lock:
                self._make_room(len(data))
                tmp = self.directory / f".tmp-{name}"
                tmp.write_bytes(data)
                os.replace(tmp, self.directory / name)
                self._forget(name)
                self._files[name] = (self._clock(), len(data))
                self._bytes += len(data)
                self._m_bytes.set(self._bytes)
            self._m_stored.inc()

    def path(self, name: str) -> Path | None:
        """The file of a snapshot name, None when the name is not one, the picture expired or was removed.

        A picture another daemon wrote into the same directory (another config file or shard of the host) is
        served too, while it is younger than the retention.
        """
        if not FILE_NAME.fullmatch(name):
            return None
        with self._lock:
            kept = self._files.get(name)
        if kept is None:
            try:
                kept = (os.stat(self.directory / name).st_mtime, 0)
            except OSError:
                return None
        if self._clock() - kept[0] > self.retention_s:
            return None
        return self.directory / name

    def sweep(self) -> int:
        """Remove expired pictures; returns how many went."""
        deadline = self._clock() - self.retention_s
        removed = 0
        with self._lock:
            while self._files:
                name, (written, _) = next(iter(self._files.items()))
                if written > deadline:
                    break
                self._remove(name, "expired")
                removed += 1
            self._m_bytes.set(self._bytes)
        return removed

    def _make_room(self, size: int) -> None:
        while self._files and self._bytes + size > self.max_bytes:
            self._remove(next(iter(self._files)), "cap")

    def _remove(self, name: str, reason: str) -> None:
        self._forget(name)
        try:
            os.unlink(self.directory / name)
        except FileNotFoundError:
            pass  # removed by hand: the store's count is what matters
        self._m_removed[reason].inc()

    def _forget(self, name: str) -> None:
        kept = self._files.pop(name, None)
        if kept is not None:
            self._bytes -= kept[1]
