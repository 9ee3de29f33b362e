"""Request and response bodies of the HTTP API (pydantic models, also the OpenAPI schema).

The wire format of an image is ``image_vector``: 784 numbers, a 28x28 image in row-major order,
0 = background and 1 = ink. Numbers are strict (no strings, no booleans) and finite.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from doodle.constants import N_PIXELS
from serving.config import DEFAULT_MAX_BATCH

Pixel = Annotated[float, Field(strict=True, ge=0.0, le=1.0, allow_inf_nan=False)]
ImageVector = Annotated[
    list[Pixel],
    Field(
        min_length=N_PIXELS,
        max_length=N_PIXELS,
        description="784 numbers in [0, 1]: a 28x28 image, row-major, 0 = background, 1 = ink.",
    ),
]


def _integral_float_to_int(value: object) -> object:
    # JSON Schema's "integer" includes 3.0; strings and booleans stay refused (strict int).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Digit = Annotated[int, Field(strict=True, ge=0, le=9), BeforeValidator(_integral_float_to_int)]
Probabilities = Annotated[
    list[float], Field(min_length=10, max_length=10, description="P(digit) for digits 0..9.")
]


class PredictRequest(BaseModel):
    image_vector: ImageVector


class PredictResponse(BaseModel):
    # "Result" is capitalised because existing clients read exactly that key.
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "Result": 7,
                    "probabilities": [0.0] * 7 + [0.97, 0.0, 0.03],
                    "confidence": 0.97,
                    "runner_up": 9,
                    "runner_up_confidence": 0.03,
                    "unsure": False,
                    "model_version": "0123456789ab",
                },
            ]
        }
    )

    Result: Digit = Field(description="The predicted digit.")
    probabilities: Probabilities
    confidence: float = Field(description="The probability of the predicted digit.")
    runner_up: Digit = Field(description="The second most probable digit.")
    runner_up_confidence: float = Field(description="The probability of the runner-up.")
    unsure: bool = Field(
        description="True when the two top probabilities differ by less than the model's unsure margin"
        " (chosen on validation data, `unsure_margin` in GET /model): show both, e.g. '9 or 3?'."
        " Result is still the answer."
    )
    model_version: str = Field(description="The first 12 hex digits of the weights' SHA-256.")


class ExplainResponse(PredictResponse):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "Result": 7,
                    "probabilities": [0.0] * 7 + [0.9, 0.0, 0.1],
                    "confidence": 0.9,
                    "runner_up": 9,
                    "runner_up_confidence": 0.1,
                    "unsure": False,
                    "model_version": "0123456789ab",
                    "attribution": [0.0] * N_PIXELS,
                },
            ]
        }
    )

    attribution: list[float] = Field(
        min_length=N_PIXELS,
        max_length=N_PIXELS,
        description=(
            "784 signed numbers, row-major like image_vector: gradient x input of"
            " logit[Result] - logit[runner_up]. Positive pixels pushed the network toward Result,"
            " negative ones toward runner_up; background pixels are 0."
        ),
    )


class ImagePredictResponse(PredictResponse):
    image_vector: ImageVector = Field(
        description="The 28x28 input the upload became, ready to send back to /feedback."
    )


# /predict/strokes: a drawing as the pad records it.
MAX_STROKE_POINTS = 4000  # points in all strokes of one drawing (a slow digit on the pad has a few hundred)
Coordinate = Annotated[float, Field(strict=True, allow_inf_nan=False)]  # ints too; no strings, no booleans
StrokePoint = Annotated[
    list[Coordinate], Field(min_length=2, max_length=2, description="[x, y] in pad pixels, y down.")
]
Stroke = Annotated[
    list[StrokePoint], Field(min_length=1, description="One pen-down to pen-up; one point is a dot.")
]
# A pad's side in pixels: an integer, 280.0 included (JSON Schema's "integer" does).
PadSide = Annotated[int, Field(ge=16, le=4096, strict=True), BeforeValidator(_integral_float_to_int)]


class StrokesPredictRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"strokes": [[[140, 40], [140, 240]], [[110, 70], [140, 40]]], "width": 280, "height": 280},
            ]
        }
    )

    strokes: list[Stroke] = Field(
        min_length=1,
        description=f"The strokes in drawing order, each a list of [x, y] pad pixels (y pointing down),"
        f" at most {MAX_STROKE_POINTS} points in all; points may stray a little off the pad, not far.",
    )
    width: PadSide = Field(default=280, description="The pad's width in pixels.")
    height: PadSide = Field(default=280, description="The pad's height in pixels.")


class StrokesPredictResponse(ImagePredictResponse):
    views: list[str] = Field(
        description='The views the answer pooled: ["pixels", "path"] when the served model has a path'
        ' model, ["pixels"] when it has none (a pixel-only model folder).'
    )


class NumberDigit(BaseModel):
    digit: Digit = Field(description="The digit read in this box.")
    confidence: float = Field(description="The probability of that digit.")
    box: list[int] = Field(
        min_length=4,
        max_length=4,
        description="The digit's ink on the upload: [x, y, width, height] in pixels.",
    )
    probabilities: Probabilities
    image_vector: ImageVector = Field(
        description="The 28x28 input this digit became, ready to send back to /feedback."
    )


class NumberPredictResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "number": "7",
                    "digits": [
                        {
                            "digit": 7,
                            "confidence": 1.0,
                            "box": [40, 30, 90, 150],
                            "probabilities": [0.0] * 7 + [1.0, 0.0, 0.0],
                            "image_vector": [0.0] * N_PIXELS,
                        }
                    ],
                    "model_version": "0123456789ab",
                    "reason": None,
                },
            ]
        }
    )

    number: str = Field(pattern="^[0-9]+$", description="The digits read, left to right.")
    digits: list[NumberDigit] = Field(min_length=1, description="One entry per digit, left to right.")
    model_version: str = Field(description="The first 12 hex digits of the weights' SHA-256.")
    reason: str | None = Field(
        default=None, description="What the segmentation could not do (a box it could not cut), if anything."
    )


class BatchPredictRequest(BaseModel):
    # The schema's cap stops validation at the first image too many, so an oversized batch is
    # refused before its numbers are all parsed; DOODLE_MAX_BATCH may set a lower limit.
    image_vectors: list[ImageVector] = Field(
        min_length=1,
        max_length=DEFAULT_MAX_BATCH,
        description="Images in the same format as `image_vector`.",
    )


class BatchPrediction(BaseModel):
    Result: Digit
    probabilities: Probabilities
    confidence: float
    runner_up: Digit
    runner_up_confidence: float
    unsure: bool


class BatchPredictResponse(BaseModel):
    results: list[BatchPrediction]
    model_version: str


class FeedbackRequest(BaseModel):
    image_vector: ImageVector
    predicted_digit: Digit = Field(description="What the model answered.")
    actual_digit: Digit = Field(description="What the drawing really is.")
    strokes: list[Stroke] | None = Field(
        default=None,
        min_length=1,
        description="Optional: the pen's strokes the drawing was made with, as /predict/strokes takes them"
        f" (pad pixels, y down, drawing order, at most {MAX_STROKE_POINTS} points in all). A correction sent"
        " with them also teaches the path model; without them it is pixel-only.",
    )
    width: PadSide = Field(default=280, description="The pad's width in pixels (with strokes).")
    height: PadSide = Field(default=280, description="The pad's height in pixels (with strokes).")


class FeedbackResponse(BaseModel):
    message: str
    id: int = Field(description="The stored row's id in the feedback database.")


class ErrorResponse(BaseModel):
    detail: str = Field(description="What was wrong, in words.")


class HealthResponse(BaseModel):
    status: str


class ReadinessResponse(BaseModel):
    ready: bool
    model_version: str | None = None
    reason: str | None = None


class ModelInfo(BaseModel):
    version: str
    sha256: str
    layer_sizes: list[int]
    source: str = Field(description="Where the model was loaded from (path or MLflow URI).")
    normalization: dict[str, float]
    unsure_margin: float = Field(
        0.0, description="Answers whose top two probabilities differ by less than this are flagged unsure."
    )
    metrics: dict = Field(default_factory=dict, description="Training metrics from the metadata.")
    metadata: dict = Field(default_factory=dict, description="The rest of mlp.json.")
    switched_at: float | None = Field(
        None,
        description="When this model started serving (seconds since the epoch): start-up or the last hot swap.",
    )
