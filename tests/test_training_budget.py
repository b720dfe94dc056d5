"""--max-minutes: the run stops at an epoch end once the budget is spent, but a finished schedule is not a stop."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from training.train import StopAfter


@pytest.mark.parametrize("epochs, done, stopped", [(3, 1, True), (1, 1, False)])
def test_spent_budget_stops_at_the_next_epoch_end_unless_it_was_the_last(epochs, done, stopped):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    budget = StopAfter(0)
    history = model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=epochs, callbacks=[budget], verbose=0)
    assert len(history.history["loss"]) == done
    assert budget.stopped_early is stopped
