"""The path representation: joined strokes resampled by arc length, normalised with the aspect
kept, pen-up flags and directions; its checks of bad drawings; the path MLP's gradients against
finite differences on real path features, and a short training run that learns."""

from __future__ import annotations

import numpy as np
import pytest

from doodle.model import mlp, path_model
from doodle.model import path_features as pf


def _rows(features: np.ndarray, points: int = pf.POINTS) -> np.ndarray:
    return features.reshape(points, pf.CHANNELS)


def test_vector_length_and_ranges():
    strokes = [np.array([[10.0, 10.0], [50.0, 90.0], [90.0, 10.0]]), np.array([[30.0, 50.0], [70.0, 50.0]])]
    features = pf.path_features(strokes)
    assert features.shape == (pf.feature_size(),) and features.dtype == np.float32
    rows = _rows(features)
    assert np.abs(rows[:, :2]).max() == pytest.approx(1.0)
    assert set(np.unique(rows[:, 2])) == {0.0, 1.0}  # ink and one jump
    norms = np.linalg.norm(rows[:, 3:], axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_resampling_does_not_depend_on_the_pen_speed():
    """A line drawn with 3 points or with 50 gives the same vector."""
    sparse = [np.array([[0.0, 0.0], [50.0, 100.0], [100.0, 0.0]])]
    t = np.linspace(0, 1, 26)[:, None]
    dense = [
        np.concatenate(
            [np.array([0.0, 0.0]) + t * [50.0, 100.0], np.array([50.0, 100.0]) + t[1:] * [50.0, -100.0]]
        )
    ]
    np.testing.assert_allclose(pf.path_features(sparse), pf.path_features(dense), atol=1e-5)


def test_position_and_size_are_normalised_and_the_aspect_kept():
    tall = [np.array([[100.0, 20.0], [110.0, 220.0]])]
    moved = [stroke * 0.5 + 30.0 for stroke in tall]
    np.testing.assert_allclose(pf.path_features(tall), pf.path_features(moved), atol=1e-6)
    rows = _rows(pf.path_features(tall))
    assert np.ptp(rows[:, 1]) == pytest.approx(2.0)
    assert np.ptp(rows[:, 0]) == pytest.approx(0.1, abs=1e-6)  # 10 wide for 200 tall: stays thin


def test_direction_tells_the_drawing_order():
    """The same ink drawn the other way round has the same points in reverse and opposite directions."""
    stroke = np.array([[0.0, 0.0], [40.0, 10.0], [60.0, 80.0]])
    forward = _rows(pf.path_features([stroke]))
    backward = _rows(pf.path_features([stroke[::-1]]))
    np.testing.assert_allclose(forward[:, :2], backward[::-1, :2], atol=1e-5)
    assert not np.allclose(forward, backward)
    # Down the first segment vs up it: cos flips sign.
    assert forward[0, 3] > 0 > backward[-2, 3]


def test_pen_up_marks_the_jump_between_strokes():
    strokes = [np.array([[0.0, 0.0], [0.0, 100.0]]), np.array([[100.0, 0.0], [100.0, 100.0]])]
    rows = _rows(pf.path_features(strokes))
    up = np.flatnonzero(rows[:, 2] == 0)
    assert len(up) > 0 and rows[: up[0], 2].all() and rows[up[-1] + 1 :, 2].all()
    # The points on the jump lie between the two strokes.
    assert (rows[up, 0] > -1).all() and (rows[up, 0] < 1).all()


def test_a_dot_is_a_drawing():
    features = pf.path_features([np.array([[140.0, 140.0]])])
    assert np.isfinite(features).all()
    rows = _rows(features)
    np.testing.assert_array_equal(rows[:, :2], 0.0)
    assert rows[:, 2].all()


@pytest.mark.parametrize(
    ("strokes", "message"),
    [
        ([], "at least one stroke"),
        ([np.array([[1.0, 2.0]]), np.empty((0, 2))], "stroke 1 has no points"),
        ([np.array([[1.0, np.nan]])], "stroke 0 holds NaN"),
        ([np.array([1.0, 2.0, 3.0])], "stroke 0 must be (K, 2)"),
    ],
)
def test_bad_drawings_are_refused_by_name(strokes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pf.path_features(strokes)


def test_augmentation_keeps_the_order_and_moves_the_points():
    rng = np.random.default_rng(0)
    strokes = [np.array([[0.0, 0.0], [10.0, 50.0], [20.0, 0.0]]), np.array([[5.0, 25.0], [15.0, 25.0]])]
    moved = pf.augment_strokes(strokes, rng)
    assert [len(s) for s in moved] == [3, 2]
    assert not np.allclose(np.concatenate(moved), np.concatenate(strokes))
    assert np.abs(np.concatenate(moved) - np.concatenate(strokes)).max() < 20


def _path_batch(n: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    drawings = [
        [rng.uniform(0, 280, size=(rng.integers(1, 9), 2)) for _ in range(rng.integers(1, 3))]
        for _ in range(n)
    ]
    return pf.features_of(drawings, points=4).astype(np.float64), rng.integers(0, 10, n)


def test_path_mlp_gradients_match_finite_differences():
    """The path MLP is `doodle.model.mlp` with path features in: its backward pass against central
    differences in float64, on real feature vectors (pen flags of 0 and 1, unit directions)."""
    x, y = _path_batch()
    params = mlp.init_params([x.shape[1], 6, 5, 10], 3, dtype=np.float64)
    rng = np.random.default_rng(4)
    for key in params:
        params[key] += 0.1 * rng.standard_normal(params[key].shape)
    _, grads, _ = mlp.loss_and_grads(params, x, y, 0.0, 0.05)
    eps = 1e-6
    for key, array in params.items():
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            original = array[index]
            array[index] = original + eps
            plus = mlp.loss_and_grads(params, x, y, 0.0, 0.05).loss
            array[index] = original - eps
            minus = mlp.loss_and_grads(params, x, y, 0.0, 0.05).loss
            array[index] = original
            numeric[index] = (plus - minus) / (2 * eps)
        scale = max(np.abs(numeric).max(), np.abs(grads[key]).max(), 1e-12)
        assert np.abs(numeric - grads[key]).max() / scale < 1e-7, key


def test_training_learns_to_tell_strokes_apart():
    """Vertical strokes drawn downwards are 1s, horizontal ones 7s... the order of points alone
    (the same ink drawn up or down) separates two more classes: ink could not."""
    rng = np.random.default_rng(5)

    def drawing(label: int) -> list[np.ndarray]:
        t = np.linspace(0, 1, 6)[:, None]
        start, end = {
            0: ([0, 0], [0, 100]),
            1: ([0, 100], [0, 0]),
            2: ([0, 0], [100, 0]),
            3: ([100, 0], [0, 0]),
        }[label]
        line = np.array(start) + t * (np.array(end) - np.array(start))
        return [line + rng.normal(0, 2, line.shape)]

    labels = np.arange(200) % 4
    drawings = [drawing(label) for label in labels]
    config = path_model.PathConfig(points=8, hidden_sizes=[16], epochs=5, augment_copies=1, batch_size=16)
    x, y = path_model.augmented_features(drawings, labels, config, seed=1)
    assert x.shape == (400, pf.feature_size(8)) and (y[:200] == y[200:]).all()
    result = path_model.train_path_model(x, y, config, seed=2, val=(x[:200], y[:200]))
    probs = path_model.path_proba(result.params, x[:200], result.temperature)
    assert (probs.argmax(axis=1) == labels).mean() > 0.95
    assert result.temperature > 0 and len(result.history) == 5 and "val_accuracy" in result.history[0]


def test_train_calibrated_never_reads_the_held_out_fold():
    """The model trains on every fold but the held-out one; the temperature comes from a twin
    calibrated on another fold. Labels scrambled in the held-out fold change nothing."""
    rng = np.random.default_rng(6)

    def line(label: int) -> list[np.ndarray]:
        t = np.linspace(0, 1, 5)[:, None]
        end = np.array([[0, 100], [100, 0], [100, 100], [-100, 100]][label])
        return [t * end + rng.normal(0, 2, (5, 2))]

    labels = np.arange(250) % 4
    drawings = [line(label) for label in labels]
    folds = np.arange(250) % 5
    config = path_model.PathConfig(points=6, hidden_sizes=[16], epochs=20, augment_copies=0, batch_size=16)
    model, twin_accuracy = path_model.train_calibrated(drawings, labels, folds, 2, config, seed=3)
    scrambled = labels.copy()
    scrambled[folds == 2] = (scrambled[folds == 2] + 1) % 4
    again, _ = path_model.train_calibrated(drawings, scrambled, folds, 2, config, seed=3)
    for key in model.params:
        np.testing.assert_array_equal(model.params[key], again.params[key])
    assert model.temperature == again.temperature > 0 and 0.0 <= twin_accuracy <= 1.0
    features = pf.features_of(drawings, 6)
    assert (path_model.path_proba(model.params, features).argmax(axis=1) == labels).mean() > 0.9


def test_corrections_with_strokes_teach_the_path_model_a_shape_the_writers_never_drew():
    """``extra`` drawings (corrections made on the pad) are in the training set of the model and of
    its twin: a digit only they show is read after, and never without them."""
    rng = np.random.default_rng(8)

    def line(label: int) -> list[np.ndarray]:
        t = np.linspace(0, 1, 5)[:, None]
        end = np.array([[0, 100], [100, 0], [100, 100]][label])
        return [t * end + rng.normal(0, 2, (5, 2))]

    def ring() -> list[np.ndarray]:
        angle = np.linspace(0, 2 * np.pi, 12)[:, None]
        return [np.hstack([np.cos(angle), np.sin(angle)]) * 50 + rng.normal(0, 2, (12, 2))]

    labels = np.arange(150) % 3
    drawings = [line(label) for label in labels]
    folds = np.arange(150) % 5
    corrections = ([ring() for _ in range(40)], np.full(40, 9))
    config = path_model.PathConfig(points=6, hidden_sizes=[16], epochs=20, augment_copies=0, batch_size=16)
    unseen = pf.features_of([ring() for _ in range(10)], 6)
    taught, _ = path_model.train_calibrated(drawings, labels, folds, 2, config, seed=3, extra=corrections)
    plain, _ = path_model.train_calibrated(drawings, labels, folds, 2, config, seed=3)
    assert (path_model.path_proba(taught.params, unseen).argmax(axis=1) == 9).mean() > 0.9
    assert not (path_model.path_proba(plain.params, unseen).argmax(axis=1) == 9).any()
    with pytest.raises(ValueError, match="3 extra drawings for 2 labels"):
        path_model.train_calibrated(drawings, labels, folds, 2, config, seed=3, extra=([ring()] * 3, [9, 9]))


@pytest.mark.parametrize("sizes", [[12, 7, 5, 10], [12, 10]])
def test_stacked_members_are_one_mlp_whose_logits_are_their_mean(sizes):
    members = [mlp.init_params(sizes, seed=seed) for seed in range(3)]
    for member in members:
        for name in member:
            if name.startswith("b"):
                member[name] += (
                    np.random.default_rng(len(name)).normal(size=member[name].shape).astype(np.float32)
                )
    x = np.random.default_rng(4).normal(size=(6, 12)).astype(np.float32)
    stacked = path_model.stack_ensemble(members)
    expected = np.mean([mlp.forward(member, x) for member in members], axis=0)
    np.testing.assert_allclose(mlp.forward(stacked, x), expected, rtol=1e-5, atol=1e-5)
    assert mlp.layer_sizes_of(stacked)[0] == 12 and mlp.layer_sizes_of(stacked)[-1] == 10
    assert path_model.stack_ensemble(members[:1]) == members[0]
