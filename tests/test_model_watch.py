"""The model watcher: a new model is loaded once it has settled, swapped in only when it loads,
and a broken one is refused once while the old model stays."""

from __future__ import annotations

import numpy as np

from doodle.loop.model_watch import ModelWatcher, file_fingerprint
from doodle.model import mlp, model_io


def save(directory, seed: int) -> model_io.Model:
    return model_io.save_model(
        directory, mlp.init_params([784, 8, 10], seed=seed), normalization={"mean": 0.1, "std": 0.3}
    )


def watcher_for(directory) -> ModelWatcher:
    ticks = iter(range(1000, 2000))
    return ModelWatcher(
        lambda: model_io.load_model(directory),
        lambda: file_fingerprint(directory),
        clock=lambda: float(next(ticks)),
    )


def test_a_new_model_is_switched_to_after_it_settles(tmp_path):
    first = save(tmp_path, seed=0)
    watcher = watcher_for(tmp_path)
    assert watcher.load_initial().version == first.version
    assert watcher.poll().outcome == "unchanged"
    second = save(tmp_path, seed=1)
    assert watcher.poll().outcome == "unchanged"  # seen once: may still be being written
    assert watcher.model.version == first.version
    switch = watcher.poll()
    assert switch.outcome == "switched"
    assert watcher.model.version == switch.model.version == second.version
    assert (watcher.switches, watcher.switched_at) == (1, 1001.0)
    assert watcher.poll().outcome == "unchanged"


def test_a_corrupt_model_is_refused_once_and_the_old_one_stays(tmp_path):
    first = save(tmp_path, seed=0)
    watcher = watcher_for(tmp_path)
    watcher.load_initial()
    weights = tmp_path / model_io.WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    watcher.poll()
    refused = watcher.poll()
    assert refused.outcome == "refused"
    assert "SHA-256 mismatch" in refused.error
    assert watcher.model.version == first.version
    assert watcher.failures == 1
    # The same broken files are not loaded again on every poll.
    assert [watcher.poll().outcome for _ in range(3)] == ["unchanged"] * 3
    assert watcher.failures == 1
    # A good model written over them is picked up.
    second = save(tmp_path, seed=2)
    watcher.poll()
    assert watcher.poll().outcome == "switched"
    assert watcher.model.version == second.version
    assert watcher.last_error is None


def test_a_missing_model_at_start_is_loaded_when_it_appears(tmp_path):
    watcher = watcher_for(tmp_path)
    try:
        watcher.load_initial()
    except model_io.ModelFileError:
        pass
    else:
        raise AssertionError("an empty folder must not load")
    assert watcher.model is None
    assert [watcher.poll().outcome for _ in range(2)] == ["unchanged"] * 2
    model = save(tmp_path, seed=3)
    watcher.poll()
    assert watcher.poll().outcome == "switched"
    assert watcher.model.version == model.version


def test_the_same_weights_rewritten_are_not_a_switch(tmp_path):
    save(tmp_path, seed=0)
    watcher = watcher_for(tmp_path)
    watcher.load_initial()
    before = watcher.model
    save(tmp_path, seed=0)  # same bytes, new file times
    outcomes = [watcher.poll().outcome for _ in range(3)]
    assert outcomes == ["unchanged"] * 3
    assert watcher.model is before and watcher.switches == 0
    np.testing.assert_array_equal(watcher.model.params["W1"], before.params["W1"])
