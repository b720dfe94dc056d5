"""The docs describe the product, not how it was made: the shared docs-history check passes."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_docs_say_nothing_about_how_the_project_was_developed(shared_dir: Path) -> None:
    check = shared_dir / "checks" / "docs-history"
    done = subprocess.run(["bash", str(check)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout[-3000:]
