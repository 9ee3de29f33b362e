"""Every message the API sends to a client, defined once; the tests assert these exact texts.

Templates with ``{}`` fields are filled with `str.format` at the point of use.
"""

from __future__ import annotations

from doodle.canvas.preprocess import BLANK_CANVAS_MESSAGE
from doodle.constants import N_PIXELS
from doodle.reading.number_reading import FAINT_DIGIT_MESSAGE

# Request bodies
INVALID_JSON = "the request body is not valid JSON (NaN and Infinity are not JSON either)"
BODY_NOT_OBJECT = "the request body must be a JSON object"
MISSING_FIELD = "missing field '{field}'"
BODY_TOO_LARGE = "request body too large: the limit is {limit} bytes"

# Image vectors
WRONG_LENGTH = f"{{field}} must hold exactly {N_PIXELS} numbers (28x28, row-major)"
NOT_A_LIST = "{field} must be a list of numbers"
NOT_A_NUMBER = "{field} must hold numbers only"
NOT_FINITE = "{field} must hold finite numbers: NaN and Infinity are not allowed"
OUT_OF_RANGE = "{field} values must lie in [0, 1] (0 = background, 1 = ink)"

# Batches
BATCH_EMPTY = "image_vectors must hold at least one image"
BATCH_TOO_LARGE = "image_vectors holds too many images: at most {limit} per request"
BLANK_IN_BATCH = f"image_vectors[{{index}}] is blank: {BLANK_CANVAS_MESSAGE}"

# Feedback
DIGIT_INVALID = "{field} must be an integer from 0 to 9"
FEEDBACK_STORED = "feedback stored"
FEEDBACK_UNAVAILABLE = "feedback store unavailable: {reason}"
FEEDBACK_NOT_STORED = "feedback not stored ({reason}): nothing was saved, send it again"

# Image uploads
EMPTY_UPLOAD = "the uploaded file is empty"
NOT_AN_IMAGE = "unusable upload: {reason}"  # reason: doodle.canvas.preprocess's decoding message
# A blank image (upload or vector) is reported, never guessed at, as the dashboard does.
BLANK_CANVAS = BLANK_CANVAS_MESSAGE  # "draw a digit first"

# Whole numbers (/predict/number)
TOO_MANY_DIGITS = "the drawing holds {count} digits: at most {limit} per request"
NUMBER_UNREADABLE = "no number to read: {reason}"  # reason: doodle.canvas.segment's words
DIGIT_TOO_FAINT = FAINT_DIGIT_MESSAGE  # "digit {index} (from the left) is too faint to read"

# Model
MODEL_NOT_LOADED = "model not loaded: {reason}"
MODEL_NOT_LOADED_YET = "the server is still starting"

# Fallback for a validation error without a dedicated message: where, then pydantic's words.
OTHER_INVALID = "{field}: {problem}"

# Strokes (/predict/strokes)
NO_STROKES = "strokes must hold at least one stroke"
EMPTY_STROKE = "strokes[{index}] is empty: a stroke needs at least one point (one point is a dot)"
NOT_A_POINT = "strokes[{index}][{point}] must be a point [x, y] of two numbers"
STROKES_NOT_A_LIST = "strokes must be a list of strokes, each a list of [x, y] points"
STROKES_NOT_FINITE = "strokes[{index}][{point}] must hold finite numbers: NaN and Infinity are not allowed"
TOO_MANY_POINTS = "the strokes hold {count} points: at most {limit} per drawing"
FAR_OUTSIDE_PAD = (
    "strokes[{index}][{point}] = [{x:g}, {y:g}] lies far outside the {width} x {height} pad"
    " (coordinates are pad pixels, y down)"
)
