"""What every child process does first: a name for ``top``, and dying with its parent.

Children ignore SIGINT (Ctrl-C reaches the whole process group; the supervisor
decides the order of shutdown) and turn SIGTERM into a stop flag, so they leave
their loops at a safe point and never die holding a queue lock. If the
supervisor itself is SIGKILLed, the kernel sends SIGTERM to the child
(PR_SET_PDEATHSIG) and the ``parent_alive`` check catches the race before it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import threading

import setproctitle

_PR_SET_PDEATHSIG = 1


def start_child(title: str, log_level: str) -> threading.Event:
    """Set up a freshly spawned child; returns the event that SIGTERM sets."""
    setproctitle.setproctitle(f"fer-stream: {title}")
    logging.basicConfig(level=log_level, format=f"%(asctime)s %(levelname)s [{title}] %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    return stop


def parent_alive(parent_pid: int) -> bool:
    return os.getppid() == parent_pid
