"""Where the shipped files live: the checkout's ``models/`` and ``config/``, or an installed wheel's copies.

A wheel installs them as data files under ``<prefix>/share/fer-stream/`` (``pyproject.toml``), so
``pip install fer-stream`` runs the shipped model and the demo config without a checkout.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import fer_stream

CHECKOUT = Path(fer_stream.__file__).resolve().parents[1]
INSTALLED = Path(sys.prefix) / "share" / "fer-stream"


def shipped(name: str) -> Path:
    """The ``models`` or ``config`` directory: the checkout's when running from one, else the installed copy."""
    checkout = CHECKOUT / name
    return checkout if checkout.is_dir() else INSTALLED / name


#: The environment variable that points at the shared data (demo videos, the YuNet face detector).
SHARED_ENV = "FER_STREAM_SHARED"
YUNET_FILE = "face_detection_yunet.onnx"


def shared_dir() -> Path:
    """The shared data folder: ``$FER_STREAM_SHARED``, else ``shared`` beside the checkout (as the demo config has it)."""
    return Path(os.environ.get(SHARED_ENV) or CHECKOUT.parent / "shared")
