"""Doodle Digits: a NumPy multilayer perceptron that reads hand-drawn digits.

The package holds every piece of shared logic; notebooks, the Voilà dashboard and the
FastAPI server import it and re-implement none of it. A folder per concern, each importing
only the folders below it (the README's layer diagram; `tests/test_layers.py` checks it):

- `doodle.app`: the drawing app (controller, widgets, views, page contract, Voilà's kernels);
- `doodle.loop`: people's corrections, the promotion rule, model swaps, MLflow;
- `doodle.study`: the seed study, development sets, writer cross-validation, benchmarks, statistics;
- `doodle.reading`: a model reading drawings (a number, why a digit, a batch on Spark);
- `doodle.model`: the network, its inputs, training, metrics and calibration, model files;
- `doodle.sources`: MNIST, the Parquet splits, real pen trajectories;
- `doodle.canvas`: the pen, canvas -> input, segmentation, generated strokes, doodles, fonts;

and at the top `doodle.constants`, `doodle.paths` and `doodle.params`, which any folder may use.
"""

__version__ = "0.1.0"
