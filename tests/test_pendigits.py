"""The real-handwriting source: the pen-digits parser on good and broken files, the verified fetch,
the writer folds, and the path from a trajectory to the model's input (the pad's own)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from doodle.canvas.drawing import Drawing
from doodle.canvas.preprocess import canvas_to_input
from doodle.sources import pendigits
from doodle.sources.mnist import ChecksumError, MissingFileError

GOOD = """\
.INCLUDE        dene.doc

.LEXICON "0" "1" "2" "3" "4" "5" "6" "7" "8" "9"
.HIERARCHY      DIGIT

.SEGMENT DIGIT    0 ? "1"
.COMMENT 1 7  12
.PEN_DOWN
 250  400
 252  300
 254  120
.PEN_UP
.DT 100
.SEGMENT DIGIT    1-2 ? "4"
.COMMENT 4 9  3
.PEN_DOWN
 150  420
 120  250
 280  250
.PEN_UP
.DT 100
.PEN_DOWN
 240  400
 240  100
.PEN_UP
.DT 100
"""


def write(tmp_path, text: str, name: str = "pendigits-orig.tra"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parse_reads_samples_strokes_and_writers(tmp_path):
    digits = pendigits.parse(write(tmp_path, GOOD))
    assert [(d.sample_id, d.label, d.writer, d.writer_sample, len(d.strokes)) for d in digits] == [
        (0, 1, 7, 12, 1),
        (1, 4, 9, 3, 2),
    ]
    assert digits[1].strokes[0].tolist() == [[150, 420], [120, 250], [280, 250]]
    assert digits[1].point_count == 5


@pytest.mark.parametrize(
    ("broken", "line", "says"),
    [
        # a sample cut off in the middle of a stroke
        (GOOD.split(" 240  100")[0], 24, "truncated"),
        # a point after .PEN_UP
        (
            GOOD.replace(".PEN_UP\n.DT 100\n.SEGMENT DIGIT    1-2", ".PEN_UP\n 10 10\n.SEGMENT DIGIT    1-2"),
            13,
            "outside a stroke",
        ),
        # the range says three strokes, the sample has two
        (GOOD.replace("1-2 ?", "1-3 ?"), 27, "its .SEGMENT range says 3"),
        # a coordinate outside the 500 x 500 box
        (GOOD.replace(" 252  300", " 252  512"), 10, "outside the 500 x 500 box"),
        # a point that is not two integers
        (GOOD.replace(" 252  300", " 252  3O0"), 10, "two integers"),
        # the comment's label differs from the segment's
        (GOOD.replace(".COMMENT 4 9  3", ".COMMENT 7 9  3"), 15, "differs from the .SEGMENT label"),
        # stroke numbers must run on through the file
        (GOOD.replace("1-2 ?", "2-3 ?"), 14, "jump from 1 to 2"),
    ],
)
def test_malformed_files_name_the_file_and_line(tmp_path, broken, line, says):
    path = write(tmp_path, broken)
    with pytest.raises(pendigits.PenDigitsFormatError, match=says) as caught:
        pendigits.parse(path)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"pendigits-orig.tra, line {line}:")


def test_check_counts_holds_the_names_file_to_its_word(tmp_path):
    digits = pendigits.parse(write(tmp_path, GOOD))
    pendigits.check_counts(digits, expected=[0, 1, 0, 0, 1, 0, 0, 0, 0, 0])
    with pytest.raises(pendigits.PenDigitsError, match="digits per class"):
        pendigits.check_counts(digits)


def test_fetch_copies_a_verified_file_and_refuses_a_corrupt_one(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    data = GOOD.encode()
    write(source, GOOD)
    expected = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "dest"
    assert pendigits.fetch(dest, local_dir=source, expected=expected).read_bytes() == data

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    write(corrupt, GOOD.replace("250", "251"))
    with pytest.raises(ChecksumError, match="SHA-256 mismatch"):
        pendigits.fetch(tmp_path / "dest2", local_dir=corrupt, expected=expected)
    assert not any((tmp_path / "dest2").iterdir())  # nothing half-written

    with pytest.raises(MissingFileError, match="not found"):
        pendigits.fetch(tmp_path / "dest3", local_dir=tmp_path / "nowhere", expected=expected)


def test_writer_folds_put_every_writer_in_exactly_one_fold():
    writers = np.repeat(np.arange(1, 31), 5)
    folds = pendigits.writer_folds(writers, 5, seed=3)
    assert sorted(folds) == list(range(1, 31))
    assert np.bincount(list(folds.values())).tolist() == [6] * 5
    assert folds == pendigits.writer_folds(writers[::-1], 5, seed=3)  # order of rows does not matter
    assert folds != pendigits.writer_folds(writers, 5, seed=4)
    with pytest.raises(ValueError, match="folds"):
        pendigits.writer_folds(writers, 31, seed=3)


def test_a_trajectory_reaches_the_model_as_a_drawing_on_the_pad_does(tmp_path):
    digit = pendigits.parse(write(tmp_path, GOOD))[1]
    pad_strokes = pendigits.to_pad(digit.strokes)
    # y flipped: the tablet's top (y = 420) is near the pad's top.
    assert pad_strokes[0][0].tolist() == pytest.approx([150 * 0.56, (500 - 420) * 0.56])
    drawing = Drawing(pen_width=pendigits.PAD_PEN_WIDTH)
    for stroke in pad_strokes:
        drawing.pen_down(*stroke[0])
        for x, y in stroke[1:]:
            drawing.pen_move(x, y)
        drawing.pen_up()
    expected = np.rint(canvas_to_input(drawing.render()) * 255).astype(np.uint8)
    assert np.array_equal(pendigits.digit_input(digit.strokes, pendigits.PAD_PEN_WIDTH), expected)


def test_spark_checks_and_renders_as_the_pad_does(spark, tmp_path):
    from doodle.sources import pendigits_spark, spark_prep

    digits = pendigits.parse(write(tmp_path, GOOD))
    df = pendigits_spark.digits_to_dataframe(spark, digits)
    checks = {
        c["check"]: c
        for c in pendigits_spark.validate(df, class_counts=[0, 1, 0, 0, 1, 0, 0, 0, 0, 0], writers=2)
    }
    assert all(check["ok"] for check in checks.values()), checks

    # A point outside the box, smuggled past the parser, is caught by Spark's check.
    bad = pendigits.PenDigit(2, 9, 4, 1, (np.array([[10, 10], [10, 640]], dtype=np.int32),))
    checks = pendigits_spark.validate(pendigits_spark.digits_to_dataframe(spark, [*digits, bad]), writers=2)
    outside = next(c for c in checks if "outside" in c["check"])
    assert (outside["actual"], outside["ok"]) == (1, False)

    rendered = pendigits_spark.render_inputs(df, [10, 20]).orderBy("sample_id", "pen_width").collect()
    assert [(row.sample_id, row.pen_width, row.label) for row in rendered] == [
        (0, 10, 1),
        (0, 20, 1),
        (1, 10, 4),
        (1, 20, 4),
    ]
    for row in rendered:
        expected = pendigits.digit_input(digits[row.sample_id].strokes, row.pen_width)
        assert bytes(row.pixels) == expected.tobytes()

    # Written twice, the Parquet is the same bytes; read back, the rows are the digits.
    outputs = []
    for attempt in range(2):
        folder = tmp_path / f"out{attempt}"
        spark_prep.write_parquet(
            df, f"{folder.resolve().as_uri()}/{pendigits.TRAJECTORIES}", order_by=("sample_id",)
        )
        outputs.append((folder / pendigits.TRAJECTORIES / "part-00000.parquet").read_bytes())
    assert outputs[0] == outputs[1]
    back = pendigits.load_trajectories(tmp_path / "out0")
    assert [(d.label, d.writer, [s.tolist() for s in d.strokes]) for d in back] == [
        (d.label, d.writer, [s.tolist() for s in d.strokes]) for d in digits
    ]


def make_inputs(writers, pens=(10, 20)):
    rows = [(writer, pen) for writer in writers for pen in pens]
    return pendigits.PenInputs(
        images=np.column_stack(
            [np.arange(len(rows)) % 256, np.arange(len(rows)) // 256, np.zeros((len(rows), 782))]
        ).astype(np.uint8),
        labels=np.arange(len(rows)) % 10,
        writers=np.array([writer for writer, _ in rows]),
        sample_ids=np.arange(len(rows)),
        pen_widths=np.array([pen for _, pen in rows]),
    )


def test_training_rows_never_hold_a_held_out_writer():
    writers = np.repeat(np.arange(1, 31), 3)
    folds = pendigits.writer_folds(writers, 5, seed=11)
    inputs = make_inputs(writers)
    for fold in range(5):
        held_out = pendigits.writers_of_fold(folds, fold)
        images, labels = pendigits.training_rows(inputs, held_out, [10], weight=2)
        trained = inputs.writers[
            [np.flatnonzero((inputs.images == image).all(axis=1))[0] for image in images]
        ]
        assert not set(trained.tolist()) & held_out
        assert set(trained.tolist()) | held_out == set(range(1, 31))
        assert len(images) == 2 * 24 * 3  # 24 writers x 3 digits at one pen, twice
    assert pendigits.writers_of_fold(folds, -1) == set()
    with pytest.raises(pendigits.PenDigitsError, match="not rendered"):
        pendigits.training_rows(inputs, set(), [14], weight=1)
    assert len(pendigits.training_rows(inputs, set(), [10], weight=0)[0]) == 0
