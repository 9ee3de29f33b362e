"""Real people's pen trajectories: the training writers of the UCI "Pen-Based Recognition of
Handwritten Digits" set (E. Alpaydin and F. Alimoglu, Bogazici University, 1998; UCI data set 81,
CC BY 4.0).

30 writers wrote 7,494 digits on a pen tablet, each inside a 500 x 500 box; the tablet sampled the
pen every 100 ms while it was down. The raw file is UNIPEN-like text (`parse` reads it and checks
every line). This module gets the file (a local folder or the UCI archive, SHA-256 verified),
parses it into `PenDigit` rows, puts a digit's strokes on the drawing pad as a person would have
drawn it there (`to_pad`), and splits writers into folds (`writer_folds`): every estimate of how
the model reads people it has never seen holds whole writers out, never a random share of digits.
"""

from __future__ import annotations

import io
import os
import shutil
import urllib.request
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from doodle.canvas.drawing import PEN_WIDTH, render_strokes
from doodle.canvas.preprocess import canvas_to_input
from doodle.constants import CANVAS_SIZE, N_CLASSES
from doodle.sources.mnist import ChecksumError, MissingFileError, sha256_of, write_verified

FILE_NAME = "pendigits-orig.tra"
SHA256 = "a66225d68d7d68591e62944df1ad33b3f5aa608e2df2505844b41f5568a80da4"
# The names file's class counts of the 30 training writers, digits 0..9.
CLASS_COUNTS: tuple[int, ...] = (780, 779, 780, 719, 780, 720, 720, 778, 719, 719)
WRITER_COUNT = 30
BOX = 500  # tablet coordinates are integers in [0, BOX], y pointing up
ARCHIVE_URL = "https://archive.ics.uci.edu/static/public/81/pen+based+recognition+of+handwritten+digits.zip"
ARCHIVE_MEMBER = "pendigits-orig.tra.Z"  # Unix `compress` (LZW) inside the zip
DIR_ENV = "DOODLE_PENDIGITS_DIR"
TIMEOUT_SECONDS = 60.0

HEADER_DIRECTIVES = (".INCLUDE", ".LEXICON", ".HIERARCHY")
PAD_PEN_WIDTH = PEN_WIDTH  # the drawing pad's own pen, px: what people in the app draw with
FOLDS = "folds.json"  # {writer: fold} written by the stage


class PenDigitsError(ValueError):
    """The pen-digits file is not what the data set's format says."""


class PenDigitsFormatError(PenDigitsError):
    """A line of the file breaks the format; the message names the file and the line."""

    def __init__(self, source: str, line: int, message: str):
        super().__init__(f"{source}, line {line}: {message}")
        self.source, self.line = source, line


@dataclass(frozen=True)
class PenDigit:
    """One digit as written: its strokes in drawing order, each a ``(K, 2)`` int array of tablet
    points ``(x, y)`` in the 500 x 500 box with y pointing up, as the file gives them."""

    sample_id: int  # position of the digit in the file, from 0
    writer: int
    label: int
    writer_sample: int  # the writer's own sample number
    strokes: tuple[np.ndarray, ...]

    @property
    def point_count(self) -> int:
        return sum(len(stroke) for stroke in self.strokes)


# ---- reading the file


def parse(path: str | os.PathLike) -> list[PenDigit]:
    """Every digit of a raw pen-digits file, each line checked (`parse_lines`)."""
    path = Path(path)
    with open(path, encoding="ascii") as handle:
        return parse_lines(handle, source=path.name)


def parse_lines(lines: Iterable[str], source: str = "<lines>") -> list[PenDigit]:
    """Parse UNIPEN-like lines into `PenDigit` rows.

    A sample is ``.SEGMENT DIGIT n[-m] ? "d"``, then ``.COMMENT d writer number``, then its strokes:
    ``.PEN_DOWN``, one ``x y`` line per point, ``.PEN_UP``, with ``.DT`` pauses between them. The
    stroke numbers n..m run on through the file, so a sample has m - n + 1 strokes. Any line that
    breaks this (a point outside a stroke, a coordinate outside the box, a stroke count that
    differs from the range, a sample cut short, a label that disagrees with its comment) raises
    `PenDigitsFormatError` naming the source and the line.
    """
    digits: list[PenDigit] = []
    current: dict | None = None  # the sample being read
    stroke: list[tuple[int, int]] | None = None  # the stroke being read, None with the pen up
    next_stroke = 0
    line_number = 0

    def fail(message: str) -> None:
        raise PenDigitsFormatError(source, line_number, message)

    def finish() -> None:
        nonlocal current
        if current is None:
            return
        if current["comment"] is None:
            fail(f"sample starting at line {current['line']} has no .COMMENT line")
        if len(current["strokes"]) != current["expected"]:
            fail(
                f"sample starting at line {current['line']} has {len(current['strokes'])} strokes,"
                f" its .SEGMENT range says {current['expected']}"
            )
        writer, writer_sample = current["comment"]
        digits.append(
            PenDigit(
                sample_id=len(digits),
                writer=writer,
                label=current["label"],
                writer_sample=writer_sample,
                strokes=tuple(np.asarray(points, dtype=np.int32) for points in current["strokes"]),
            )
        )
        current = None

    for line_number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        if not text.startswith("."):
            if stroke is None:
                fail(f"point {text!r} outside a stroke (no .PEN_DOWN before it)")
            fields = text.split()
            if len(fields) != 2 or not all(field.lstrip("-").isdigit() for field in fields):
                fail(f"expected a point 'x y' of two integers, found {text!r}")
            x, y = int(fields[0]), int(fields[1])
            if not (0 <= x <= BOX and 0 <= y <= BOX):
                fail(f"point ({x}, {y}) lies outside the {BOX} x {BOX} box")
            stroke.append((x, y))
            continue
        directive, _, rest = text.partition(" ")
        if directive in HEADER_DIRECTIVES:
            continue
        if directive == ".SEGMENT":
            if stroke is not None:
                fail(".SEGMENT inside a stroke (no .PEN_UP before it)")
            finish()
            first, last, label = _segment(rest, fail)
            if first != next_stroke:
                fail(f"stroke numbers jump from {next_stroke} to {first}")
            next_stroke = last + 1
            current = {
                "label": label,
                "expected": last - first + 1,
                "strokes": [],
                "comment": None,
                "line": line_number,
            }
        elif directive == ".COMMENT":
            if current is None:
                fail(".COMMENT before any .SEGMENT")
            fields = rest.split()
            if len(fields) != 3 or not all(field.isdigit() for field in fields):
                fail(f"expected '.COMMENT label writer number', found {text!r}")
            label, writer, writer_sample = (int(field) for field in fields)
            if label != current["label"]:
                fail(f".COMMENT label {label} differs from the .SEGMENT label {current['label']}")
            current["comment"] = (writer, writer_sample)
        elif directive == ".PEN_DOWN":
            if current is None:
                fail(".PEN_DOWN before any .SEGMENT")
            if stroke is not None:
                fail(".PEN_DOWN inside a stroke (no .PEN_UP before it)")
            stroke = []
        elif directive == ".PEN_UP":
            if stroke is None:
                fail(".PEN_UP without a .PEN_DOWN")
            if not stroke:
                fail("a stroke without points")
            current["strokes"].append(stroke)
            stroke = None
        elif directive == ".DT":
            if not rest.strip().isdigit():
                fail(f"expected '.DT milliseconds', found {text!r}")
        else:
            fail(f"unknown directive {directive!r}")
    line_number += 1  # errors found at the end point just past the last line
    if stroke is not None:
        fail("the file ends inside a stroke (no .PEN_UP): truncated")
    finish()
    if not digits:
        fail("no samples")
    return digits


def _segment(rest: str, fail) -> tuple[int, int, int]:
    """``DIGIT n[-m] ? "d"`` -> (first stroke, last stroke, label)."""
    fields = rest.split()
    if len(fields) != 4 or fields[0] != "DIGIT" or fields[2] != "?":
        fail(f"expected '.SEGMENT DIGIT n[-m] ? \"d\"', found '.SEGMENT {rest}'")
    first_text, _, last_text = fields[1].partition("-")
    if not first_text.isdigit() or (last_text and not last_text.isdigit()):
        fail(f"bad stroke range {fields[1]!r}")
    first = int(first_text)
    last = int(last_text) if last_text else first
    if last < first:
        fail(f"stroke range {fields[1]!r} runs backwards")
    quoted = fields[3]
    if not (len(quoted) == 3 and quoted[0] == quoted[2] == '"' and quoted[1].isdigit()):
        fail(f"expected a digit label in quotes, found {quoted}")
    return first, last, int(quoted[1])


def check_counts(digits: Sequence[PenDigit], expected: Sequence[int] = CLASS_COUNTS) -> None:
    """Raise `PenDigitsError` unless the digits per class are those the names file gives."""
    counts = np.bincount([digit.label for digit in digits], minlength=N_CLASSES).tolist()
    if counts != list(expected):
        raise PenDigitsError(f"digits per class {counts} differ from the data set's {list(expected)}")


# ---- getting the file


def fetch(
    dest_dir: str | os.PathLike,
    *,
    local_dir: str | os.PathLike | None = None,
    url: str = ARCHIVE_URL,
    timeout: float = TIMEOUT_SECONDS,
    expected: str = SHA256,
) -> Path:
    """Put ``pendigits-orig.tra`` into `dest_dir`, verified by SHA-256, and return its path.

    Source: `local_dir`, else the folder in env DOODLE_PENDIGITS_DIR, else the UCI archive at `url`
    (a zip holding the file compressed with Unix `compress`). A verified copy already in
    `dest_dir` is kept. The file is written under a temporary name, verified, then renamed: a wrong
    file raises `ChecksumError` and leaves nothing behind.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / FILE_NAME
    if target.is_file() and sha256_of(target) == expected:
        return target
    if local_dir is None:
        local_dir = os.environ.get(DIR_ENV) or None
    if local_dir is not None:
        source = Path(local_dir) / FILE_NAME
        if not source.is_file():
            raise MissingFileError(
                f"{FILE_NAME}: not found in {local_dir} (set by {DIR_ENV}); expected SHA-256 {expected}"
            )

        def copy(handle) -> None:
            with open(source, "rb") as src:
                shutil.copyfileobj(src, handle)

        write_verified(target, FILE_NAME, expected, copy, origin=str(source))
        return target

    def download(handle) -> None:
        request = urllib.request.Request(url, headers={"User-Agent": "doodle-digits"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            archive = zipfile.ZipFile(io.BytesIO(response.read()))
        names = [name for name in archive.namelist() if name.rsplit("/", 1)[-1] == ARCHIVE_MEMBER]
        if not names:
            raise MissingFileError(f"{url}: the archive holds no {ARCHIVE_MEMBER}")
        import unlzw3  # only the download needs it

        handle.write(unlzw3.unlzw(archive.read(names[0])))

    try:
        write_verified(target, FILE_NAME, expected, download, origin=url)
    except ChecksumError:
        raise
    except OSError as error:
        raise MissingFileError(
            f"{FILE_NAME}: download from {url} failed: {type(error).__name__}: {error}"
        ) from error
    return target


# ---- onto the pad


def to_pad(strokes: Sequence[np.ndarray], size: int = CANVAS_SIZE) -> list[np.ndarray]:
    """Tablet strokes -> pad strokes: the writer's 500 x 500 box laid on the ``size`` px pad, y
    flipped to point down. The writer wrote inside that box, so the digit keeps the place and the
    size it had there: what a person drawing in the pad's square does."""
    scale = size / BOX
    return [
        np.column_stack([stroke[:, 0] * scale, (BOX - stroke[:, 1]) * scale]).astype(np.float64)
        for stroke in strokes
    ]


# ---- writer folds


def writer_folds(writers: Iterable[int], folds: int, seed: int) -> dict[int, int]:
    """{writer: fold} for the distinct `writers`: shuffled with `seed`, dealt round-robin into
    `folds` groups of (nearly) equal size. A writer is in exactly one fold."""
    distinct = np.array(sorted(set(int(writer) for writer in writers)))
    if folds < 2 or folds > len(distinct):
        raise ValueError(f"need 2..{len(distinct)} folds for {len(distinct)} writers, got {folds}")
    order = np.random.default_rng(seed).permutation(distinct)
    return {int(writer): position % folds for position, writer in enumerate(order)}


def digit_input(strokes: Sequence[np.ndarray], pen_width: float) -> np.ndarray:
    """A digit's tablet strokes -> the model's ``(28, 28)`` uint8 input (0 background .. 255 ink),
    exactly as the app reads a drawing: laid on the pad (`to_pad`), drawn with the pad's round pen
    (`doodle.canvas.drawing.render_strokes`) at ``pen_width`` px, then `canvas_to_input`."""
    pad = render_strokes(
        [[tuple(point) for point in stroke.tolist()] for stroke in to_pad(strokes)], pen_width=pen_width
    )
    return np.rint(canvas_to_input(pad) * 255.0).astype(np.uint8)


# ---- the stage's Parquet, read back with pyarrow alone

TRAJECTORIES = "trajectories.parquet"
INPUTS = "inputs.parquet"


@dataclass(frozen=True)
class PenInputs:
    """The stage's rendered inputs: ``images`` ``(N, 784)`` uint8, and per row ``labels``,
    ``writers``, ``sample_ids`` and ``pen_widths``, sorted by sample id then pen width."""

    images: np.ndarray
    labels: np.ndarray
    writers: np.ndarray
    sample_ids: np.ndarray
    pen_widths: np.ndarray

    @classmethod
    def empty(cls) -> PenInputs:
        none = np.empty(0, dtype=np.int64)
        return cls(np.empty((0, 784), dtype=np.uint8), none, none, none, none)

    def where(self, keep: np.ndarray) -> PenInputs:
        return PenInputs(*(getattr(self, name)[keep] for name in self.__dataclass_fields__))


def load_inputs(root: str | os.PathLike) -> PenInputs:
    """``<root>/inputs.parquet`` (the `pendigits` stage's output) -> `PenInputs`."""
    import pyarrow.dataset as ds

    from doodle.sources.data import binary_matrix

    path = Path(root) / INPUTS
    if not path.exists():
        raise PenDigitsError(f"rendered pen digits not found at {path}: run `dvc repro pendigits` first")
    table = ds.dataset(path, format="parquet").to_table()
    order = np.lexsort((table.column("pen_width").to_numpy(), table.column("sample_id").to_numpy()))
    return PenInputs(
        images=binary_matrix(table.column("pixels"), 784, str(path))[order],
        labels=table.column("label").to_numpy().astype(np.int64)[order],
        writers=table.column("writer").to_numpy().astype(np.int64)[order],
        sample_ids=table.column("sample_id").to_numpy().astype(np.int64)[order],
        pen_widths=table.column("pen_width").to_numpy().astype(np.int64)[order],
    )


def load_folds(root: str | os.PathLike) -> dict[int, int]:
    """``<root>/folds.json`` -> {writer: fold}."""
    import json

    path = Path(root) / FOLDS
    if not path.exists():
        raise PenDigitsError(f"writer folds not found at {path}: run `dvc repro pendigits` first")
    return {int(writer): int(fold) for writer, fold in json.loads(path.read_text()).items()}


def load_trajectories(root: str | os.PathLike) -> list[PenDigit]:
    """``<root>/trajectories.parquet`` -> `PenDigit` rows in sample order."""
    import pyarrow.dataset as ds

    path = Path(root) / TRAJECTORIES
    if not path.exists():
        raise PenDigitsError(f"pen trajectories not found at {path}: run `dvc repro pendigits` first")
    rows = ds.dataset(path, format="parquet").to_table().sort_by("sample_id").to_pylist()
    return [
        PenDigit(
            sample_id=row["sample_id"],
            writer=row["writer"],
            label=row["label"],
            writer_sample=row["writer_sample"],
            strokes=tuple(np.asarray(stroke, dtype=np.int32).reshape(-1, 2) for stroke in row["strokes"]),
        )
        for row in rows
    ]


def writers_of_fold(folds: dict[int, int], fold: int) -> set[int]:
    """The writers dealt into ``fold`` (none for -1, "no fold held out")."""
    if fold != -1 and fold not in set(folds.values()):
        raise ValueError(f"no writer fold {fold}: the folds are {sorted(set(folds.values()))}")
    return {writer for writer, own in folds.items() if own == fold}


def training_rows(
    inputs: PenInputs, held_out: set[int], pen_widths: Sequence[int], weight: int
) -> tuple[np.ndarray, np.ndarray]:
    """The real writers' rows for training: every writer not in ``held_out``, at each of
    ``pen_widths``, repeated ``weight`` times -> images ``(M, 784)`` uint8, labels ``(M,)``."""
    missing = sorted(set(int(pen) for pen in pen_widths) - set(np.unique(inputs.pen_widths).tolist()))
    if missing:
        raise PenDigitsError(
            f"pen widths {missing} were not rendered by the pendigits stage (params: pendigits.pen_widths)"
        )
    keep = ~np.isin(inputs.writers, list(held_out)) & np.isin(inputs.pen_widths, list(pen_widths))
    if weight <= 0 or not keep.any():
        return np.empty((0, inputs.images.shape[1]), dtype=np.uint8), np.empty(0, dtype=np.int64)
    return np.tile(inputs.images[keep], (weight, 1)), np.tile(inputs.labels[keep], weight)
