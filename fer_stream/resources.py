"""Where the shipped files live: the checkout's ``models/`` and ``config/``, or an installed wheel's copies.

A wheel installs them as data files under ``<prefix>/share/fer-stream/`` (``pyproject.toml``), so
``pip install fer-stream`` runs the shipped model and the demo config without a checkout.
"""

from __future__ import annotations

import sys
from pathlib import Path

import fer_stream

CHECKOUT = Path(fer_stream.__file__).resolve().parents[1]
INSTALLED = Path(sys.prefix) / "share" / "fer-stream"


def shipped(name: str) -> Path:
    """The ``models`` or ``config`` directory: the checkout's when running from one, else the installed copy."""
    checkout = CHECKOUT / name
    return checkout if checkout.is_dir() else INSTALLED / name
