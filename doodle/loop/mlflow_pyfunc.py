"""MLflow "models from code" entry point: the registered pyfunc is built by running this file.

Logging code instead of a pickled object means the registry holds no pickle at all: loading a
version runs this file, which builds `doodle.loop.tracking.DoodleMLP`, and that reads the weights with
`doodle.model.model_io.load_model`.
"""

from mlflow.models import set_model

from doodle.loop.tracking import DoodleMLP

set_model(DoodleMLP())
