"""The built wheel works without the checkout: installed into a fresh venv, it validates a config and predicts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import fer_stream

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def run(*command: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path, media_dir, yunet_model):
    dist, venv, elsewhere = tmp_path / "dist", tmp_path / "venv", tmp_path / "site"
    elsewhere.mkdir()
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, REPO, cwd=tmp_path)
    [wheel] = dist.glob("fer_stream-*.whl")
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    run(venv / "bin" / "pip", "install", "-q", wheel, cwd=elsewhere)
    fer = venv / "bin" / "fer-stream"
    assert run(fer, "--version", cwd=elsewhere).stdout.strip() == f"fer-stream {fer_stream.__version__}"
    assert run(venv / "bin" / "fer-train", "--version", cwd=elsewhere).stdout.strip() == f"fer-train {fer_stream.__version__}"
    config = elsewhere / "cameras.yaml"
    config.write_text(f"detector: {{model_path: {yunet_model}}}\ncameras:\n  - {{name: door, source: {media_dir / 'angry_man.mp4'}}}\n")
    checked = run(fer, "check-config", config, cwd=elsewhere)
    assert "OK" in checked.stdout and "model: shipped default" in checked.stdout
    predicted = run(fer, "predict", media_dir / "one_face.jpg", "--detector-model", yunet_model, cwd=elsewhere)
    assert "1 face (yunet)" in predicted.stdout and "happy" in predicted.stdout
    shipped = venv / "share" / "fer-stream" / "models"
    assert (shipped / "DEFAULT").read_text() == (REPO / "models" / "DEFAULT").read_text(), "the model came from the wheel"
