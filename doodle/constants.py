"""Numbers the whole project agrees on, defined once: the image format the network reads, the
drawing pad's size, what counts as ink, and the default ports of the two servers.

Pure constants with no imports, so any layer (and `serving/`) can use them.
"""

# MNIST's format: a 28x28 grey image, row-major, read by the network as 784 numbers.
IMAGE_SIDE = 28
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE  # 784: the network's input width
N_CLASSES = 10  # digits 0..9: the network's output width

# The drawing pad (dashboard) and every synthetic canvas (doodles, typed digits), in px per side.
CANVAS_SIZE = 280

# A pixel is ink when its [0, 1] value exceeds one half; on MNIST's byte scale that is byte >= 128.
INK_THRESHOLD = 0.5
INK_THRESHOLD_BYTE = 128

# Where `make run` serves the API and the drawing dashboard unless told otherwise.
DEFAULT_API_PORT = 8000
DEFAULT_DASHBOARD_PORT = 8866
