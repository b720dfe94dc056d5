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

ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Set when this run created the directory (and so removes it at exit).
OWNED_ENV = "FER_STREAM_METRICS_DIR_OWNED"


def ensure_multiprocess_metrics() -> str:
    """Return the metrics directory, re-executing this command if prometheus_client was imported too early."""
    directory = os.environ.get(ENV)
    if not directory:
        directory = tempfile.mkdtemp(prefix="fer-stream-metrics-")
        os.environ[ENV] = directory
        os.environ[OWNED_ENV] = directory
        if "prometheus_client" in sys.modules:
            # Some module imported it in single-process mode: start over with the variable set.
            os.execv(sys.executable, sys.orig_argv)
    os.makedirs(directory, exist_ok=True)
    return directory


def forget_dead_process(directory: str, pid: int) -> None:
    """Drop a dead child's gauges: a dead process has no current value (its counters stay)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, directory)
    for path in glob.glob(os.path.join(directory, f"gauge_*_{pid}.db")):
        os.remove(path)


def remove_if_owned(directory: str) -> None:
    if os.environ.get(OWNED_ENV) == directory:
        shutil.rmtree(directory, ignore_errors=True)
