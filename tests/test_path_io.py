"""The path model's files beside the pixel model's: one model version. Loaded together, refused
when they do not belong together, installed together, and switched together by the watcher."""

from __future__ import annotations

import json

import numpy as np
import pytest

from doodle.loop import promotion
from doodle.loop.model_watch import ModelWatcher, file_fingerprint
from doodle.model import mlp, model_io, path_features, path_io

POINTS = 8


def save_pair(folder, seed: int, *, with_path: bool = True, pool_weight: float = 0.5) -> model_io.Model:
    pixel = model_io.save_model(
        folder, mlp.init_params([784, 8, 10], seed=seed), normalization={"mean": 0.1, "std": 0.3}
    )
    if with_path:
        model_io.save_path_model(
            folder,
            mlp.init_params([path_features.feature_size(POINTS), 6, 10], seed=seed + 100),
            points=POINTS,
            temperature=0.8,
            pool_weight=pool_weight,
            pixel_sha256=pixel.sha256,
        )
    return model_io.load_model(folder)


DRAWING = [np.array([[50.0, 50.0], [60.0, 200.0]]), np.array([[40.0, 120.0], [90.0, 120.0]])]


def test_the_pair_loads_together_and_reads_both_views(tmp_path):
    model = save_pair(tmp_path, seed=0)
    assert model.path is not None and model.path.points == POINTS and model.path.pool_weight == 0.5
    assert json.loads((tmp_path / path_io.METADATA_NAME).read_text())["pixel_sha256"] == model.sha256
    image = np.zeros((1, 784), dtype=np.float32)
    both = path_io.read_views(model, image, [DRAWING])
    assert both.views == ["pixels", "path"]
    np.testing.assert_allclose(both.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    expected = path_io.pool(model.predict_proba(image), model.path.predict_proba([DRAWING]), 0.5)
    np.testing.assert_allclose(both.probabilities, expected, rtol=1e-5)
    assert not np.allclose(both.probabilities, model.predict_proba(image))
    # Without strokes (an uploaded image) the pixel view alone.
    pixels_only = path_io.read_views(model, image, None)
    assert pixels_only.views == ["pixels"]
    np.testing.assert_array_equal(pixels_only.probabilities, model.predict_proba(image))


def test_a_folder_without_path_files_is_pixel_only(tmp_path):
    model = save_pair(tmp_path, seed=0, with_path=False)
    assert model.path is None
    assert path_io.read_views(model, np.zeros((1, 784)), [DRAWING]).views == ["pixels"]


def test_a_path_model_of_another_pixel_model_is_refused(tmp_path):
    save_pair(tmp_path, seed=0)
    model_io.save_model(
        tmp_path, mlp.init_params([784, 8, 10], seed=5), normalization={"mean": 0.1, "std": 0.3}
    )
    with pytest.raises(model_io.ModelFileError, match="made for the pixel model"):
        model_io.load_model(tmp_path)


@pytest.mark.parametrize("damage", ["missing json", "missing npz", "tampered", "bad weight"])
def test_a_broken_path_model_refuses_the_folder(tmp_path, damage):
    save_pair(tmp_path, seed=0)
    weights, metadata = path_io.paths_of(tmp_path)
    if damage == "missing json":
        metadata.unlink()
    elif damage == "missing npz":
        weights.unlink()
    elif damage == "tampered":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    else:
        meta = json.loads(metadata.read_text())
        meta["pool_weight"] = -1
        metadata.write_text(json.dumps(meta))
    message = {
        "missing json": "path model file not found",
        "missing npz": "path model file not found",
        "tampered": "SHA-256 mismatch",
        "bad weight": "pool_weight",
    }[damage]
    with pytest.raises(model_io.ModelFileError, match=message):
        model_io.load_model(tmp_path)


def test_install_switches_both_files_or_removes_the_old_path(tmp_path):
    served = tmp_path / "models"
    first = save_pair(tmp_path / "first", seed=0)
    installed = promotion.install_model(tmp_path / "first", served)
    assert path_io.pair_identity(installed) == path_io.pair_identity(first)
    second = save_pair(tmp_path / "second", seed=1)
    installed = promotion.install_model(tmp_path / "second", served)
    assert path_io.pair_identity(installed) == path_io.pair_identity(second)
    assert installed.path.sha256 != first.path.sha256
    # A pixel-only candidate takes the old path model away: it was made for other pixel weights.
    save_pair(tmp_path / "third", seed=2, with_path=False)
    installed = promotion.install_model(tmp_path / "third", served)
    assert installed.path is None
    assert not path_io.has_path_model(served)


def test_the_watcher_switches_the_pair_together_or_not_at_all(tmp_path):
    first = save_pair(tmp_path, seed=0)
    ticks = iter(range(1000, 2000))
    watcher = ModelWatcher(
        lambda: model_io.load_model(tmp_path),
        lambda: file_fingerprint(tmp_path),
        clock=lambda: float(next(ticks)),
    )
    watcher.load_initial()
    # New pixel weights without their path model yet: refused, the old pair keeps serving.
    pixel = model_io.save_model(
        tmp_path, mlp.init_params([784, 8, 10], seed=7), normalization={"mean": 0.1, "std": 0.3}
    )
    watcher.poll()
    refused = watcher.poll()
    assert refused.outcome == "refused" and "made for the pixel model" in refused.error
    assert path_io.pair_identity(watcher.model) == path_io.pair_identity(first)
    # Its path model arrives: both switch at once.
    new_path = model_io.save_path_model(
        tmp_path,
        mlp.init_params([path_features.feature_size(POINTS), 6, 10], seed=8),
        points=POINTS,
        temperature=1.0,
        pool_weight=0.7,
        pixel_sha256=pixel.sha256,
    )
    watcher.poll()
    assert watcher.poll().outcome == "switched"
    assert path_io.pair_identity(watcher.model) == (pixel.sha256, new_path.sha256)
    # A new path model for the same pixel weights is a new version too.
    newer = model_io.save_path_model(
        tmp_path,
        mlp.init_params([path_features.feature_size(POINTS), 6, 10], seed=9),
        points=POINTS,
        temperature=1.0,
        pool_weight=0.7,
        pixel_sha256=pixel.sha256,
    )
    watcher.poll()
    assert watcher.poll().outcome == "switched"
    assert watcher.model.path.sha256 == newer.sha256
