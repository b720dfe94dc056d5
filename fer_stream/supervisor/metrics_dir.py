"""prometheus_client's multiprocess mode, set up before anything imports it.

prometheus_client decides at import time whether values live in per-process
files; every process of the daemon (supervisor included) must see
``PROMETHEUS_MULTIPROC_DIR`` before that import. The supervisor creates a
fresh directory per run, so no stale samples from an earlier run are served.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
import threading

ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Set when this run created the directory (and so removes it at exit).
OWNED_ENV = "FER_STREAM_METRICS_DIR_OWNED"
#: Own directories are ``<tmp>/fer-stream-metrics-<supervisor pid>-<random>``.
PREFIX = "fer-stream-metrics-"


def ensure_multiprocess_metrics() -> str:
    """Return the metrics directory, re-executing this command if prometheus_client was imported too early."""
    directory = os.environ.get(ENV)
    if not directory:
        remove_orphans()
        directory = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
        os.environ[ENV] = directory
        os.environ[OWNED_ENV] = directory
        if "prometheus_client" in sys.modules:
            # Some module imported it in single-process mode: start over with the variable set.
            os.execv(sys.executable, sys.orig_argv)
    os.makedirs(directory, exist_ok=True)
    return directory


#: Held while a dead child's files are merged away and while /metrics reads the directory, so a
#: scrape never opens a file that is being removed.
LOCK = threading.Lock()


def forget_dead_process(directory: str, pid: int) -> None:
    """Drop a dead child's gauges and fold its counters and histograms into one archive file per type.

    A dead process has no current value, so its gauges go. Its counts must stay (a counter
    that goes down reads as a reset), but one file per dead child would grow the directory,
    and the scrape time, with every restart: they are summed into ``<type>_archive.db``.
    """
    from prometheus_client import multiprocess

    with LOCK:
        multiprocess.mark_process_dead(pid, directory)
        for path in glob.glob(os.path.join(directory, f"gauge_*_{pid}.db")):
            os.remove(path)
        for kind in ("counter", "histogram", "summary"):
            dead = os.path.join(directory, f"{kind}_{pid}.db")
            if os.path.exists(dead):
                _fold_into_archive(dead, os.path.join(directory, f"{kind}_archive.db"))


def _fold_into_archive(dead: str, archive: str) -> None:
    from prometheus_client.mmap_dict import MmapedDict

    totals: dict[str, float] = {}
    for path in (archive, dead):
        if os.path.exists(path):
            values = MmapedDict(path, read_mode=True)
            try:
                for key, value, _ in values.read_all_values():
                    totals[key] = totals.get(key, 0.0) + value
            finally:
                values.close()
    partial = archive + ".partial"  # not *.db: the collector never reads a half-written archive
    merged = MmapedDict(partial)
    try:
        for key, value in totals.items():
            merged.write_value(key, value, 0.0)
    finally:
        merged.close()
    os.replace(partial, archive)
    os.remove(dead)


def remove_orphans() -> None:
    """Remove the directories of earlier runs whose supervisor died without cleaning up (SIGKILL, power loss)."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), f"{PREFIX}*-*")):
        pid = os.path.basename(path)[len(PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(path, ignore_errors=True)


def remove_if_owned(directory: str) -> None:
    if os.environ.get(OWNED_ENV) == directory:
        shutil.rmtree(directory, ignore_errors=True)
