"""Typed digits: 0-9 in the fonts that ship with matplotlib, drawn on a canvas and put through
`doodle.canvas.preprocess.canvas_to_input`. A reader of handwriting should read print too: this is
the minimum-functionality set of the behavioural tests and the evaluation notebook."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from doodle.canvas.preprocess import canvas_to_input
from doodle.constants import CANVAS_SIZE

# Regular, bold and slanted faces of the families matplotlib bundles in mpl-data/fonts/ttf.
FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
)
# Point sizes on the 280 px canvas: small, medium and nearly filling it.
FONT_SIZES = (64, 128, 200)


def font_dir() -> Path:
    """matplotlib's bundled TrueType fonts."""
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@dataclass(frozen=True)
class FontDigits:
    """``images`` ``(N, 28, 28)`` float32 in [0, 1]; ``labels`` ``(N,)`` int64; ``fonts`` the
    font file name and ``sizes`` the point size of each image (``(N,)`` each)."""

    images: np.ndarray
    labels: np.ndarray
    fonts: np.ndarray
    sizes: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def draw_digit(digit: int, font_file: str | Path, size: int) -> np.ndarray:
    """One digit, black on a white ``(280, 280)`` uint8 canvas, centred."""
    font = ImageFont.truetype(str(font_file), size)
    canvas = Image.new("L", (CANVAS_SIZE, CANVAS_SIZE), 255)
    ImageDraw.Draw(canvas).text(
        (CANVAS_SIZE / 2, CANVAS_SIZE / 2), str(digit), font=font, fill=0, anchor="mm"
    )
    return np.asarray(canvas, dtype=np.uint8)


def font_digits(font_files: Sequence[str] = FONT_FILES, sizes: Sequence[int] = FONT_SIZES) -> FontDigits:
    """Every digit in every font at every size, as model inputs (10 x fonts x sizes images)."""
    folder = font_dir()
    images, labels, fonts, point_sizes = [], [], [], []
    for name in font_files:
        for size in sizes:
            for digit in range(10):
                images.append(canvas_to_input(draw_digit(digit, folder / name, size)))
                labels.append(digit)
                fonts.append(name)
                point_sizes.append(size)
    return FontDigits(
        images=np.stack(images).astype(np.float32),
        labels=np.asarray(labels, dtype=np.int64),
        fonts=np.asarray(fonts),
        sizes=np.asarray(point_sizes, dtype=np.int64),
    )
