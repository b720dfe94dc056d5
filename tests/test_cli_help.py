"""The command lines introduce themselves: a version, and help for every option."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import fer_stream

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("command", ["fer-stream", "fer-train"])
def test_version(command: str) -> None:
    done = subprocess.run([str(BIN / command), "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"{command} {fer_stream.__version__}"


def test_every_fer_train_option_has_help() -> None:
    from training.cli import build_parser

    parser = build_parser()
    undocumented = []
    for action in parser._subparsers._group_actions[0].choices.items():  # type: ignore[union-attr]
        name, sub = action
        undocumented += [f"{name} {', '.join(a.option_strings)}" for a in sub._actions if a.option_strings and not a.help]
    assert not undocumented, undocumented
