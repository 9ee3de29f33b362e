"""The drawing page's contract with what reads it: the CSS classes on its parts and the
``data-*`` attributes that say what is shown.

`doodle.app.dashboard` puts these on the page; the browser driver of the tests and benchmarks
(`tests/support/browser.py`) finds things by them. Renaming one here renames it on both sides.
"""

from __future__ import annotations

# CSS classes, one per part of the page.
APP = "doodle-app"  # the whole app
PAD = "doodle-pad"  # the drawing canvas
PREDICT = "doodle-predict"  # buttons
UNDO = "doodle-undo"
CLEAR = "doodle-clear"
SUBMIT = "doodle-submit"
GUESS = "doodle-guess"  # the widget holding the result
RESULT = "doodle-result"  # inside it: carries DATA_STATE and DATA_SEQ
GUESS_DIGIT = "doodle-guess-digit"
GUESS_TEXT = "doodle-guess-text"  # "confidence 97.1%"
GUESS_VIEWS = "doodle-guess-views"  # which views were read; carries DATA_VIEWS ("pixels" or "pixels path")
DATA_VIEWS = "data-views"
GUESS_BLANK = "doodle-guess-blank"  # the message when nothing can be read
PROBS = "doodle-probs"  # the widget holding the bars
BARS = "doodle-bars"  # inside it: carries DATA_SEQ
BAR_ROW = "doodle-bar-row"  # one per digit, carries DATA_DIGIT; TOP on the guess's row
TOP = "top"
PROB = "doodle-prob"  # the percentage text of a row
INPUT_VIEW = "doodle-input-view"  # the 28x28 input the model saw
ACTUAL = "doodle-actual"  # the digit picker of the correction form
FEEDBACK_STATUS = "doodle-feedback-status"
FEEDBACK = "doodle-feedback"  # inside it: carries DATA_STATE (FEEDBACK_SAVED or FEEDBACK_ERROR)

# Data attributes. DATA_SEQ counts the answers the page has shown, so a reader waits for a
# number to grow instead of sleeping.
DATA_STATE = "data-state"
DATA_SEQ = "data-seq"
DATA_DIGIT = "data-digit"

# Values of DATA_STATE on RESULT.
STATE_GUESS = "guess"
STATE_BLANK = "blank"
STATE_IDLE = "idle"
# Values of DATA_STATE on FEEDBACK.
FEEDBACK_SAVED = "saved"
FEEDBACK_ERROR = "error"


# The "why" views, each carrying DATA_SEQ like RESULT and BARS.
ATTRIBUTION = "doodle-attribution"  # the red/blue attribution map beside the input
UNITS = "doodle-units"  # the first layer's most active units
UNIT = "doodle-unit"  # one unit: carries DATA_UNIT and DATA_ACTIVATION
DATA_UNIT = "data-unit"
DATA_ACTIVATION = "data-activation"

# Number mode (more than one digit on the pad): the result's DATA_STATE is STATE_NUMBER and its
# GUESS_DIGIT holds the number read; NUMBER lists the digits.
STATE_NUMBER = "number"
NUMBER_VIEW = "doodle-number-view"  # the widget holding the digit list
NUMBER = "doodle-number"  # inside it: carries DATA_SEQ, DATA_NUMBER ("" when not a number) and DATA_COUNT
NUMBER_DIGIT = "doodle-number-digit"  # one per digit: DATA_INDEX, DATA_DIGIT, DATA_CONFIDENCE, DATA_BOX
NUMBER_POSITION = "doodle-number-position"  # which digit a correction is for (shown in number mode)
DATA_NUMBER = "data-number"
DATA_COUNT = "data-count"
DATA_INDEX = "data-index"  # 0-based, left to right
DATA_CONFIDENCE = "data-confidence"
DATA_BOX = "data-box"  # "x,y,w,h" of the digit's ink in pad pixels
BOX_COLOUR = "#ff9800"  # each digit's box as painted on the pad
BOX_MARGIN = 4  # px between a digit's ink and its box


def selector(css_class: str) -> str:
    """``"doodle-pad"`` -> ``".doodle-pad"``."""
    return "." + css_class
