"""Doodle Digits: a NumPy multilayer perceptron that reads hand-drawn digits.

The package holds every piece of shared logic; notebooks, the Voilà dashboard and the
FastAPI server import it and re-implement none of it.
"""

__version__ = "0.1.0"
