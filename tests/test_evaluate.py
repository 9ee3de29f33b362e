"""The evaluation metrics against small cases computed by hand."""

import numpy as np
import pytest

from doodle.model import evaluate

Y_TRUE = np.array([0, 0, 1, 2, 2, 2])
Y_PRED = np.array([0, 1, 1, 2, 0, 2])


def test_accuracy_counts_matches():
    assert evaluate.accuracy([0, 1, 2, 3], [0, 1, 1, 3]) == pytest.approx(0.75)
    assert evaluate.accuracy(Y_TRUE, Y_PRED) == pytest.approx(4 / 6)


def test_accuracy_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        evaluate.accuracy([0, 1], [0])


def test_confusion_matrix_rows_are_true_columns_predicted():
    expected = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    matrix = evaluate.confusion_matrix(Y_TRUE, Y_PRED, n_classes=3)
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.dtype == np.int64


def test_confusion_matrix_has_ten_classes_by_default():
    matrix = evaluate.confusion_matrix([9, 3], [9, 4])
    assert matrix.shape == (10, 10)
    assert matrix[9, 9] == 1 and matrix[3, 4] == 1 and matrix.sum() == 2


def test_confusion_matrix_rejects_labels_out_of_range():
    with pytest.raises(ValueError, match="labels must lie in"):
        evaluate.confusion_matrix([0, 3], [0, 1], n_classes=3)


def test_per_class_report_by_hand():
    report = evaluate.per_class_report(Y_TRUE, Y_PRED, n_classes=3)
    # Columns of the confusion matrix sum to predictions, rows to supports.
    np.testing.assert_allclose(report.precision, [1 / 2, 1 / 2, 2 / 2])
    np.testing.assert_allclose(report.recall, [1 / 2, 1 / 1, 2 / 3])
    np.testing.assert_allclose(report.f1, [0.5, 2 / 3, 0.8])
    np.testing.assert_array_equal(report.support, [2, 1, 3])
    assert report.macro_f1 == pytest.approx((0.5 + 2 / 3 + 0.8) / 3)
    assert report.rows()[2] == {
        "digit": 2,
        "precision": 1.0,
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(0.8),
        "support": 3,
    }


def test_class_never_predicted_scores_zero_not_nan():
    report = evaluate.per_class_report([0, 1, 1], [0, 0, 0], n_classes=3)
    assert report.precision[1] == 0.0 and report.recall[1] == 0.0 and report.f1[1] == 0.0
    assert report.f1[2] == 0.0  # absent and never predicted
    assert np.isfinite(report.f1).all()


def test_reliability_bins_and_ece_by_hand():
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.5, 0.5], [0.5, 0.5]])
    labels = np.array([0, 1, 0, 0])
    bins = evaluate.reliability_bins(probs, labels, n_bins=15)
    assert bins.edges.shape == (16,) and bins.counts.sum() == 4
    # 0.95 lies in (14/15, 1]; 0.5 in (7/15, 8/15].
    assert bins.counts[14] == 2 and bins.counts[7] == 2
    assert bins.accuracy[14] == pytest.approx(0.5) and bins.confidence[14] == pytest.approx(0.95)
    assert bins.accuracy[7] == pytest.approx(1.0) and bins.confidence[7] == pytest.approx(0.5)
    assert np.isnan(bins.accuracy[0])
    # 0.5 * |0.5 - 0.95| + 0.5 * |1.0 - 0.5|
    assert bins.ece == pytest.approx(0.475)
    assert evaluate.expected_calibration_error(probs, labels, n_bins=15) == pytest.approx(0.475)


def test_confidence_on_a_bin_edge_falls_in_the_bin_it_closes():
    edges = np.linspace(0.0, 1.0, 16)
    probs = np.array([[edges[13], 1 - edges[13]], [1.0, 0.0]])
    bins = evaluate.reliability_bins(probs, np.array([1, 0]), n_bins=15)
    assert bins.counts[12] == 1 and bins.counts[14] == 1


def test_perfectly_calibrated_predictions_have_zero_ece():
    # Confidence 0.75 and three in four right.
    probs = np.tile([[0.75, 0.25]], (4, 1))
    assert evaluate.expected_calibration_error(probs, np.array([0, 0, 0, 1])) == pytest.approx(0.0)


def test_most_confident_mistakes_orders_wrong_answers_by_confidence():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.05, 0.95], [0.7, 0.3]])
    labels = np.array([0, 0, 0, 0, 1])
    np.testing.assert_array_equal(evaluate.most_confident_mistakes(probs, labels, k=2), [3, 1])
    np.testing.assert_array_equal(evaluate.most_confident_mistakes(probs, labels, k=10), [3, 1, 4, 2])
    assert len(evaluate.most_confident_mistakes(probs[:1], labels[:1], k=3)) == 0


def _ink_threshold_predict(images):
    """A toy classifier: digit 1 when an image holds more than 2 units of ink, else 0."""
    return (images.reshape(len(images), -1).sum(axis=1) > 2).astype(np.int64)


def test_robustness_curve_reports_accuracy_per_parameter_value():
    images = np.zeros((4, 28, 28), dtype=np.float32)
    images[:, 0, :3] = 1.0  # 3 units of ink each: all predicted 1
    labels = np.array([1, 1, 1, 1])
    curve = evaluate.robustness_curve(_ink_threshold_predict, images, labels, lambda x, v: x * v, [1.0, 0.5])
    np.testing.assert_allclose(curve, [[1.0, 1.0], [0.5, 0.0]])


def test_robustness_curve_accepts_a_predict_returning_digits_and_probs():
    images = np.ones((2, 28, 28), dtype=np.float32)
    predict = lambda x: (_ink_threshold_predict(x), None)  # noqa: E731
    curve = evaluate.robustness_curve(predict, images, np.array([1, 0]), lambda x, v: x, [0.0])
    np.testing.assert_allclose(curve, [[0.0, 0.5]])


def test_agreement_is_the_share_of_unchanged_predictions():
    images = np.zeros((4, 28, 28), dtype=np.float32)
    images[:2, 0, :3] = 1.0
    transformed = np.zeros_like(images)
    transformed[0, 0, :3] = 1.0
    assert evaluate.agreement(_ink_threshold_predict, images, transformed) == pytest.approx(0.75)


def test_unsure_margin_flags_the_chosen_share_of_mistakes():
    from doodle.model.evaluate import choose_unsure_margin
    from doodle.model.model_io import top_two

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(10, 0.3), size=4000)
    labels = np.where(rng.random(4000) < 0.8, probs.argmax(axis=1), rng.integers(0, 10, 4000))
    margin = choose_unsure_margin(probs, labels)
    answers = top_two(probs, margin)
    wrong = answers.digits != labels
    assert 0.0 < margin < 1.0
    assert abs(answers.unsure[wrong].mean() - 0.5) < 0.01  # half of the mistakes, by construction
    assert answers.unsure[~wrong].mean() < answers.unsure[wrong].mean()  # sure answers are right more often
    assert choose_unsure_margin(probs, probs.argmax(axis=1)) == 0.0  # no mistake: never unsure


def test_top_two_names_the_runner_up_and_its_margin():
    from doodle.model.model_io import top_two

    probs = np.array([[0.1, 0.6, 0.3] + [0.0] * 7, [0.0] * 9 + [1.0]])
    answers = top_two(probs, unsure_margin=0.4)
    assert answers.digits.tolist() == [1, 9]
    assert answers.runner_ups.tolist()[0] == 2 and answers.runner_ups[1] != 9
    np.testing.assert_allclose(answers.margins, [0.3, 1.0])
    assert answers.unsure.tolist() == [True, False]


def _probs(rows):
    """(N, 10) probabilities from {digit: probability} dicts, the rest spread evenly."""
    out = np.zeros((len(rows), 10))
    for row, given in zip(out, rows):
        rest = (1.0 - sum(given.values())) / (10 - len(given))
        row[:] = rest
        for digit, value in given.items():
            row[digit] = value
    return out


# Image 0 right; 1 confidently read as 7 with the label ruled out; 2 read as 4 with the label 9 a close
# runner-up; 3 read as 3 with some weight on the label 5, not the runner-up; 4 confidently wrong but the
# label keeps some weight.
KIND_PROBS = _probs(
    [{1: 0.95}, {7: 0.98, 1: 0.005}, {4: 0.5, 9: 0.4}, {3: 0.6, 8: 0.3, 5: 0.05}, {2: 0.93, 0: 0.05}]
)
KIND_LABELS = np.array([1, 1, 9, 5, 0])


def test_mistake_kinds_from_the_model_alone():
    kinds = evaluate.mistake_kinds(KIND_PROBS, KIND_LABELS, [], unsure_margin=0.3)
    assert kinds.indices.tolist() == [1, 2, 3, 4]
    assert [evaluate.MISTAKE_KINDS[k] for k in kinds.kinds] == [
        "label noise",
        "ambiguous",
        "genuine",
        "genuine",
    ]
    assert kinds.seed_count == 0 and np.isnan(kinds.seed_share).all()
    assert kinds.counts() == {"label noise": 1, "ambiguous": 1, "genuine": 2}
    assert kinds.of("genuine").tolist() == [3, 4]
    # The runner-up is close only within the model's unsure margin.
    assert evaluate.mistake_kinds(KIND_PROBS, KIND_LABELS, [], unsure_margin=0.05).counts()["ambiguous"] == 0


def test_seed_runs_that_disagree_make_a_mistake_ambiguous_and_no_longer_label_noise():
    # Three seed runs: all miss 1 and 4; one reads 3 right; none misses 2.
    seeds = [[0, 1, 3, 4], [1, 4], [1, 3, 4]]
    kinds = evaluate.mistake_kinds(KIND_PROBS, KIND_LABELS, seeds, unsure_margin=0.05)
    assert kinds.seed_count == 3
    assert kinds.seed_share.tolist() == pytest.approx([1.0, 0.0, 2 / 3, 1.0])
    assert [evaluate.MISTAKE_KINDS[k] for k in kinds.kinds] == [
        "label noise",
        "ambiguous",
        "ambiguous",
        "genuine",
    ]
    # A seed run that read image 1 right: the runs no longer agree it is another digit.
    moved = evaluate.mistake_kinds(KIND_PROBS, KIND_LABELS, [[3, 4], [1, 4]], unsure_margin=0.05)
    assert evaluate.MISTAKE_KINDS[moved.kinds[0]] == "ambiguous"


def test_mistake_kinds_of_a_model_without_mistakes_and_of_bad_input():
    right = evaluate.mistake_kinds(KIND_PROBS[:1], KIND_LABELS[:1], [[0]], unsure_margin=0.3)
    assert right.indices.size == 0 and right.counts() == {"label noise": 0, "ambiguous": 0, "genuine": 0}
    with pytest.raises(ValueError, match="seed run 1: image indices must lie in 0..4"):
        evaluate.mistake_kinds(KIND_PROBS, KIND_LABELS, [[1], [5]], unsure_margin=0.3)
    with pytest.raises(ValueError, match="probs must be"):
        evaluate.mistake_kinds(KIND_PROBS[:3], KIND_LABELS, [], unsure_margin=0.3)


def test_fit_temperature_recovers_the_scale_of_overconfident_and_underconfident_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20000, 10)) * 2.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = (probs.cumsum(axis=1) > rng.random((len(probs), 1))).argmax(axis=1)  # drawn from probs
    assert evaluate.fit_temperature(logits * 3.0, labels) == pytest.approx(3.0, rel=0.05)
    assert evaluate.fit_temperature(logits / 2.0, labels) == pytest.approx(0.5, rel=0.05)
    with pytest.raises(ValueError, match="need"):
        evaluate.fit_temperature(logits[:, 0], labels)
