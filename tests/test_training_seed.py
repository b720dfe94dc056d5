"""The seed preset without ImageNet weights: a clear stop, or a scratch run the card admits to."""

from __future__ import annotations

import json

import pytest
from training_fixtures import FER_TRAIN, require_shared

import training.train
from fer_stream.model_card import load_card
from training.cli import main


@pytest.fixture
def no_keras_cache(tmp_path, monkeypatch):
    """Point Keras' weight cache at an empty directory, as on a fresh machine without network."""
    monkeypatch.setattr(training.train, "KERAS_IMAGENET_CACHE", tmp_path / "empty-keras-cache")


def test_seed_without_imagenet_weights_stops_with_a_plain_message(tmp_path, capsys, no_keras_cache):
    require_shared()
    code = main(["train", "--preset", "seed", "--data", str(FER_TRAIN), "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "ImageNet weights" in err and "--imagenet-weights PATH" in err and "--if-no-imagenet scratch" in err
    assert not (tmp_path / "run" / "run.json").exists()


def test_missing_imagenet_weights_file_is_named(tmp_path, capsys):
    require_shared()
    missing = tmp_path / "weights.h5"
    assert main(["train", "--preset", "seed", "--data", str(FER_TRAIN), "--out", str(tmp_path / "run"),
                 "--imagenet-weights", str(missing)]) == 2
    assert f"--imagenet-weights {missing}: file not found" in capsys.readouterr().err


@pytest.mark.slow
def test_seed_from_scratch_trains_and_the_card_records_it(tmp_path, no_keras_cache):
    require_shared()
    run, export = tmp_path / "run", tmp_path / "export"
    assert main(["train", "--preset", "seed", "--if-no-imagenet", "scratch", "--data", str(FER_TRAIN), "--out", str(run),
                 "--limit-per-class", "10", "--epochs", "1", "--input-size", "48", "--workers", "1"]) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["imagenet_weights"] is False
    # seed recipe: 20% split of the files, then 2,000 a class by oversampling the training side
    assert info["train_data"]["n_used"] == 2000 * 7
    assert info["preset"]["freeze_backbone"] is True and info["preset"]["head"] == "flatten"
    assert main(["export", "--run", str(run), "--out", str(export), "--formats", "keras"]) == 0
    card, _ = load_card(export / f"{info['model_id']}.keras")
    assert card.preset == "seed" and card.imagenet_weights is False
