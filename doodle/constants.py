"""Numbers the whole project agrees on, defined once: the image format the network reads, the
drawing pad's size, what counts as ink, how many digits a number may hold, and the ports of the
two servers.

Pure constants with no imports, so any layer (and `serving/`) can use them.
"""

# MNIST's format: a 28x28 grey image, row-major, read by the network as 784 numbers.
IMAGE_SIDE = 28
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE  # 784: the network's input width
N_CLASSES = 10  # digits 0..9: the network's output width

# The drawing pad (dashboard) and every synthetic canvas (doodles, typed digits), in px per side.
CANVAS_SIZE = 280

# Where a grey image is cut into ink and paper when a yes/no is needed: the ink statistics of the
# prepare stage and of the API's drift check, MNIST thinned before it is redrawn as a doodle, the
# ink boxes of composed numbers. A pixel is ink when its [0, 1] value exceeds one half; on MNIST's
# byte scale that is byte >= 128. (Canvas preprocessing keeps grey levels and sets its own.)
BINARY_INK_LEVEL = 0.5
BINARY_INK_BYTE = 128

# The most digits one drawing is read as (the pad's number mode and `/predict/number`'s default
# limit): a phone number with its country code fits.
MAX_NUMBER_DIGITS = 16

# Where `make run` serves the API and the drawing dashboard unless told otherwise (the Makefile
# and scripts/serve.py read these).
DEFAULT_API_PORT = 8000
DEFAULT_DASHBOARD_PORT = 8866
