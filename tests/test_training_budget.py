"""--max-minutes: the run stops at an epoch end once the budget is spent, but a finished
schedule is not a stop; and the resumed leg does not overwrite an earlier leg's better checkpoint."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from training.train import StopAfter, _earlier_legs_seconds, best_checkpoint


@pytest.mark.parametrize("epochs, done, stopped", [(3, 1, True), (1, 1, False)])
def test_spent_budget_stops_at_the_next_epoch_end_unless_it_was_the_last(epochs, done, stopped):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    budget = StopAfter(0)
    history = model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=epochs, callbacks=[budget], verbose=0)
    assert len(history.history["loss"]) == done
    assert budget.stopped_early is stopped


def _tiny_model(value: float) -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.set_weights([np.full((2, 1), value, "float32"), np.zeros(1, "float32")])
    return model


def test_resumed_run_keeps_the_earlier_legs_best_checkpoint(tmp_path):
    _tiny_model(1.0).save_weights(str(tmp_path / "best.weights.h5"))
    (tmp_path / "history.csv").write_text("epoch,accuracy,loss,val_accuracy,val_loss\n"
                                          "0,0.5,1.0,0.60,1.0\n1,0.6,0.9,0.70,0.9\n")
    for val_accuracy, kept in [(0.65, 1.0), (0.75, 2.0)]:
        checkpoint = best_checkpoint(tmp_path / "best.weights.h5")
        checkpoint.set_model(_tiny_model(2.0))
        checkpoint.on_epoch_end(0, {"val_accuracy": val_accuracy})
        saved = _tiny_model(0.0)
        saved.load_weights(str(tmp_path / "best.weights.h5"))
        assert saved.get_weights()[0][0, 0] == kept


def test_fresh_run_saves_its_first_epoch(tmp_path):
    checkpoint = best_checkpoint(tmp_path / "best.weights.h5")
    checkpoint.set_model(_tiny_model(3.0))
    checkpoint.on_epoch_end(0, {"val_accuracy": 0.1})
    assert (tmp_path / "best.weights.h5").exists()


@pytest.mark.parametrize("completed, earlier", [(False, 4504.0), (True, 0.0)])
def test_run_json_wall_time_adds_the_legs_before_a_resume(tmp_path, completed, earlier):
    (tmp_path / "run.json").write_text(json.dumps({"completed": completed, "wall_seconds": 4504.0}))
    assert _earlier_legs_seconds(tmp_path / "run.json") == earlier
    assert _earlier_legs_seconds(tmp_path / "missing.json") == 0.0
