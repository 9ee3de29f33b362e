"""scripts/torch_reference.py: the PyTorch run starts from the NumPy run's weights, sees its batches and
follows its path, so the two differ only by arithmetic (skipped without the optional PyTorch)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from doodle.model import mlp
from doodle.model.train import TrainConfig, train
from support.synthetic import synthetic_mnist

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))


@pytest.mark.slow  # importing torch alone takes several seconds
@pytest.mark.parametrize("optimizer, learning_rate", [("adam", 1e-3), ("sgd", 0.05)])
def test_pytorch_training_follows_the_numpy_run(optimizer, learning_rate):
    torch = pytest.importorskip("torch")
    from torch_reference import train_torch

    torch.set_num_threads(1)
    images, labels = synthetic_mnist(400, 1)
    val_images, val_labels = synthetic_mnist(100, 2)
    config = TrainConfig(
        seed=3,
        hidden_sizes=[32, 16],
        epochs=2,
        batch_size=64,
        optimizer=optimizer,
        learning_rate=learning_rate,
        weight_decay=0.01,
        stroke_pool=40,
    )
    numpy_run = train(config, (images, labels), (val_images, val_labels), progress=False)
    params, normalization, best_epoch, epochs_run, val_accuracy, _ = train_torch(
        config, images.reshape(-1, 784), labels, val_images.reshape(-1, 784), val_labels
    )
    assert normalization == numpy_run.normalization
    assert (best_epoch, epochs_run) == (numpy_run.best_epoch, numpy_run.epochs_run)
    start = mlp.init_params([784, 32, 16, 10], seed=3)
    for key, value in numpy_run.params.items():
        moved = np.linalg.norm(value - start[key])
        assert moved > 0
        # Both moved the same way: what separates them is float32 noise, not another algorithm or batch.
        assert np.linalg.norm(params[key] - value) < 0.01 * moved, key
    assert val_accuracy == pytest.approx(numpy_run.best.val_accuracy, abs=0.02)
