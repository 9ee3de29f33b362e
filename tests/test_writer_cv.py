"""The writer cross-validation's figures: clustered by writer, the worst writer named, the results
files read back as written."""

from __future__ import annotations

import numpy as np
import pytest

from doodle.study import writer_cv


def test_summary_names_the_worst_writer_and_clusters_by_writer():
    writers = np.repeat([1, 2, 3, 4], 100)
    labels = np.tile(np.arange(10), 40)
    predicted = labels.copy()
    predicted[(writers == 3) & (labels == 9)] = 3  # writer 3 writes nines that read as threes
    predicted[np.flatnonzero(writers == 1)[:2]] = 7
    summary = writer_cv.summarize(labels, predicted, writers)
    assert summary.worst_writer == 3
    assert summary.per_writer[3].estimate == pytest.approx(0.9)
    assert summary.confusions[0] == (9, 3, 10)
    assert summary.overall.estimate == pytest.approx(1 - 12 / 400)
    # Four writers, one of them far off: the interval is wider than a binomial one on 400 digits.
    assert summary.overall.high - summary.overall.low > 0.03
    assert summary.per_digit[9].estimate == pytest.approx(0.75)
    figures = summary.to_dict()
    assert figures["worst_writer"] == 3 and figures["worst_digit"] == 9


def test_results_files_round_trip(tmp_path):
    rows = [
        {
            "config": "default",
            "fold": fold,
            "sample_id": sample,
            "writer": writer,
            "label": sample % 10,
            "pen_width": 20,
            **{f"p{d}": f"{1.0 if d == sample % 10 else 0.0:.5f}" for d in range(10)},
        }
        for fold, (sample, writer) in enumerate([(4, 2), (1, 1), (3, 2)])
    ]
    writer_cv.append_rows(tmp_path / writer_cv.PREDICTIONS, rows[:2], writer_cv.PREDICTION_COLUMNS)
    writer_cv.append_rows(tmp_path / writer_cv.PREDICTIONS, rows[2:], writer_cv.PREDICTION_COLUMNS)
    assert b"\r" not in (tmp_path / writer_cv.PREDICTIONS).read_bytes()  # the committed files' "\n" ends
    read = writer_cv.read_predictions(tmp_path, "default")
    assert read.sample_ids.tolist() == [1, 3, 4] and read.writers.tolist() == [1, 2, 2]
    assert read.correct.all()
    with pytest.raises(writer_cv.NoResults, match="no rows of configuration 'other'"):
        writer_cv.read_predictions(tmp_path, "other")
    with pytest.raises(ValueError, match="columns differ"):
        writer_cv.append_rows(tmp_path / writer_cv.PREDICTIONS, [{"x": 1}], ["x"])
    writer_cv.append_rows(tmp_path / writer_cv.PREDICTIONS, rows[:1], writer_cv.PREDICTION_COLUMNS)
    with pytest.raises(writer_cv.NoResults, match="twice"):
        writer_cv.read_predictions(tmp_path, "default")
