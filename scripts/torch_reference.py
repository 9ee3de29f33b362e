"""The default MLP trained in PyTorch: a reference accuracy for the NumPy implementation.

The same network (784-512-512-10, ReLU, params.yaml's train section), the same initial weights
(`doodle.model.mlp.init_params` at the seed, copied into tensors), the same mini-batches (the epochs of
`doodle.model.train.EpochData`: the same shuffles, augmentation and pen-stroke mix, standardised the same
way), the same learning-rate schedule (`doodle.model.optim.lr_at`, set before every step), the same
early stopping on validation loss and the same temperature fit (`doodle.model.evaluate.fit_temperature`).
What differs is the arithmetic: `torch.optim.AdamW` (weights decayed, biases not, as
`doodle.model.optim.Adam`), `torch.nn.functional.cross_entropy` with ``label_smoothing``, autograd for
the gradients, and PyTorch's float32 kernels. As in the seed study (`doodle.study.experiments`) the
training set is the prepared MNIST training split without people's corrections, so the rows
compare with the study's ``default`` rows at the same seeds. The test split is measured once, after
training; its misread images are kept by index for a paired comparison (McNemar).

One row per seed is appended to reports/experiments/torch_reference.csv (a seed already there is
skipped). Regenerate it with (PyTorch is an optional extra: ``make bench-deps``):

    python scripts/torch_reference.py                  # the study's first 3 seeds
    python scripts/torch_reference.py --seeds 5 --results /tmp/torch.csv
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml
from threadpoolctl import threadpool_limits

from doodle.model import evaluate, mlp, optim
from doodle.model.evaluate import fit_temperature
from doodle.model.inputs import as_float_images, standardize
from doodle.model.train import EpochData, TrainConfig, logits_of, normalization_of, stroke_pool
from doodle.sources import data
from doodle.study import experiments, study_results

DEFAULT_RESULTS = Path("reports/experiments/torch_reference.csv")
SEED_COUNT = 3
CONFIG_NAME = "torch-default"
COLUMNS = [
    "config",
    "seed",
    "val_accuracy",
    "test_accuracy",
    "ece",
    "temperature",
    "best_epoch",
    "epochs_run",
    "train_seconds",
    "seconds",
    "torch",
    "torch_threads",
    "numpy",
    "cpu_model",
    "finished_at",
    "test_wrong",
]


def train_torch(
    config: TrainConfig, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
):
    """Train ``config``'s MLP in PyTorch on ``(N, 784)`` uint8 images and ``(N,)`` labels; returns
    ``(params, normalization, best_epoch, epochs_run, best_val_accuracy, train_seconds)`` with
    ``params`` the best epoch's weights as `doodle.model.mlp` float32 arrays."""
    import torch
    import torch.nn.functional as F

    started = time.perf_counter()
    x_float = as_float_images(x_train)
    y_int = np.asarray(y_train).astype(np.int64)
    normalization = normalization_of(x_float)
    val_inputs = torch.from_numpy(standardize(x_val, normalization))
    val_labels = torch.from_numpy(np.asarray(y_val).astype(np.int64))

    initial = mlp.init_params([784, *config.hidden_sizes, 10], seed=config.seed)
    tensors = {key: torch.tensor(value, requires_grad=True) for key, value in initial.items()}
    layers = mlp.n_layers(initial)
    groups = [
        {
            "params": [tensors[key] for key in tensors if optim.decays(key)],
            "weight_decay": config.weight_decay,
        },
        {"params": [tensors[key] for key in tensors if not optim.decays(key)], "weight_decay": 0.0},
    ]
    if config.optimizer.lower() == "sgd":
        optimizer = torch.optim.SGD(groups, lr=config.learning_rate, momentum=0.9, nesterov=True)
    else:
        optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.999), eps=1e-8)

    def forward(x):
        h = x
        for i in range(1, layers + 1):
            h = h @ tensors[f"W{i}"] + tensors[f"b{i}"]
            if i < layers:
                h = torch.relu(h)
        return h

    epochs = EpochData(x_float, y_int, config, normalization, stroke_pool(config))
    steps_per_epoch = -(-(len(x_float) + epochs.extra) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(round(config.warmup_epochs * steps_per_epoch))
    best = {key: value.detach().clone() for key, value in tensors.items()}
    best_epoch, best_loss, best_val_accuracy, since_best, step, epochs_run = 0, np.inf, 0.0, 0, 0, 0
    try:
        for epoch in range(1, config.epochs + 1):
            x_epoch, y_epoch = epochs.next_epoch(prefetch=epoch < config.epochs)
            x_epoch, y_epoch = torch.from_numpy(x_epoch), torch.from_numpy(y_epoch)
            for start in range(0, len(y_epoch), config.batch_size):
                lr = optim.lr_at(step, total_steps, config.learning_rate, config.lr_schedule, warmup_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                logits = forward(x_epoch[start : start + config.batch_size])
                loss = F.cross_entropy(
                    logits, y_epoch[start : start + config.batch_size], label_smoothing=config.label_smoothing
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
            epochs_run = epoch
            with torch.no_grad():
                val_logits = forward(val_inputs)
                val_loss = float(
                    F.cross_entropy(val_logits, val_labels, label_smoothing=config.label_smoothing)
                )
                val_accuracy = float((val_logits.argmax(dim=1) == val_labels).double().mean())
            if not np.isfinite(val_loss):
                raise FloatingPointError(f"training diverged in epoch {epoch}")
            print(f"  epoch {epoch}: validation loss {val_loss:.4f}, accuracy {val_accuracy:.4f}", flush=True)
            if val_loss < best_loss:
                best_epoch, best_loss, best_val_accuracy, since_best = epoch, val_loss, val_accuracy, 0
                best = {key: value.detach().clone() for key, value in tensors.items()}
            else:
                since_best += 1
            if config.patience and since_best >= config.patience:
                break
    finally:
        epochs.close()
    params = {key: value.numpy().astype(np.float32) for key, value in best.items()}
    return params, normalization, best_epoch, epochs_run, best_val_accuracy, time.perf_counter() - started


def run_seed(seed: int, params_file: Path, prepared_dir: Path) -> dict:
    """One row of `COLUMNS`: train at ``seed``, calibrate on validation, measure the test split."""
    import torch

    started = time.perf_counter()
    settings = yaml.safe_load(params_file.read_text())
    config = TrainConfig.from_params_file(params_file, {"seed": int(seed)})
    x_train, y_train = data.load_split("train", prepared_dir)
    x_val, y_val = data.load_split("validation", prepared_dir)
    x_test, y_test = data.load_split("test", prepared_dir)
    params, normalization, best_epoch, epochs_run, val_accuracy, train_seconds = train_torch(
        config, x_train, y_train, x_val, y_val
    )
    # Measured with doodle.model.mlp's forward pass on the PyTorch weights, as every consumer reads a model.
    temperature = fit_temperature(logits_of(params, normalization, x_val), y_val)
    test_probs = mlp.softmax(logits_of(params, normalization, x_test) / temperature)
    test_pred = test_probs.argmax(axis=1)
    return {
        "config": CONFIG_NAME,
        "seed": int(seed),
        "val_accuracy": val_accuracy,
        "test_accuracy": evaluate.accuracy(y_test, test_pred),
        "ece": evaluate.expected_calibration_error(
            test_probs, y_test, int(settings["evaluate"]["calibration_bins"])
        ),
        "temperature": temperature,
        "best_epoch": best_epoch,
        "epochs_run": epochs_run,
        "train_seconds": round(train_seconds, 2),
        "seconds": round(time.perf_counter() - started, 2),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "cpu_model": experiments.cpu_model(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "test_wrong": " ".join(str(int(i)) for i in np.flatnonzero(test_pred != y_test)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--prepared-dir", type=Path, default=Path("data/prepared"))
    parser.add_argument("--seeds", type=int, default=SEED_COUNT, help="the study's first N seeds")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: make bench-deps (pip install torch==2.13.0)", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    base_seed = int(yaml.safe_load(args.params.read_text())["base"]["seed"])
    finished = study_results.done(args.results)
    for seed in experiments.study_seeds(base_seed, args.seeds):
        if (CONFIG_NAME, seed) in finished:
            print(f"seed {seed}: already in {args.results}")
            continue
        print(f"seed {seed}: training in PyTorch {torch.__version__}", flush=True)
        with threadpool_limits(limits=1, user_api="blas"):
            row = run_seed(seed, args.params, args.prepared_dir)
        study_results.append_row(args.results, row, COLUMNS)
        print(json.dumps({key: row[key] for key in COLUMNS[:10]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
