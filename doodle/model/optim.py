"""Optimizers (SGD with momentum, Adam/AdamW) and learning-rate schedules for the NumPy MLP.

Each optimizer allocates its state once, and ``step`` updates the parameters in place with no
new allocation per step, keeping their dtype (float32 in training, float64 in checks). Weight
decay touches the weights ``W_l`` only, never the biases. The element-wise update runs on
blocks of the parameters in a few threads (NumPy releases the GIL inside its loops): it is a
quarter of a training step's time on one core, while the matrix products already use them all.
The result does not depend on the number of threads.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

Params = dict[str, np.ndarray]

SCHEDULES = ("cosine", "step", "constant")
OPTIMIZERS = ("sgd", "adam")
UNKNOWN_SCHEDULE = "unknown learning-rate schedule {name!r}; expected one of: " + ", ".join(SCHEDULES)
UNKNOWN_OPTIMIZER = "unknown optimizer {name!r}; expected one of: " + ", ".join(OPTIMIZERS)
NESTEROV_NEEDS_MOMENTUM = "Nesterov momentum needs momentum > 0"


# Elements per block of the element-wise update: large enough that the Python overhead per
# block (about a dozen ufunc calls) stays small, small enough to spread over the threads.
BLOCK_SIZE = 1 << 18

_executors: dict[int, ThreadPoolExecutor] = {}


def decays(key: str) -> bool:
    """Whether weight decay applies to the parameter named ``key`` (weights yes, biases no)."""
    return key.startswith("W")


def default_threads() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _blocks(arrays: Sequence[np.ndarray]) -> list[tuple[np.ndarray, ...]]:
    """Matching flat views of equally shaped arrays, cut into blocks of ``BLOCK_SIZE``.

    The first array (the parameter, updated in place) must allow a flat view; the others are
    flattened, which copies only a non-contiguous gradient.
    """
    first = arrays[0]
    if first.size <= BLOCK_SIZE or not first.flags.c_contiguous:
        return [tuple(arrays)]
    flat = [array.reshape(-1) for array in arrays]
    return [
        tuple(array[start : start + BLOCK_SIZE] for array in flat)
        for start in range(0, first.size, BLOCK_SIZE)
    ]


Task = tuple[Callable[..., None], tuple[np.ndarray, ...]]


def _run_blocks(tasks: list[Task], threads: int) -> None:
    """``update(*block)`` for every ``(update, block)``, spread round-robin over ``threads``."""

    def run_share(share: list[Task]) -> None:
        for update, block in share:
            update(*block)

    if threads <= 1 or len(tasks) == 1:
        run_share(tasks)
        return
    executor = _executors.get(threads)
    if executor is None:
        executor = _executors[threads] = ThreadPoolExecutor(threads - 1, thread_name_prefix="optim")

    futures = [executor.submit(run_share, tasks[i::threads]) for i in range(1, threads)]
    run_share(tasks[0::threads])
    for future in futures:
        future.result()


class SGD:
    """Stochastic gradient descent with (optionally Nesterov) momentum and L2 weight decay.

    Weight decay is classic L2 regularisation, coupled to the gradient as in PyTorch's SGD:
    ``g = dW + weight_decay * W`` enters the momentum buffer. Per parameter ``p``::

        v = momentum * v + g
        p -= lr * (g + momentum * v)   if nesterov
        p -= lr * v                    otherwise (and p -= lr * g when momentum == 0)

    ``params`` and later ``grads``: dicts ``{"W1": (784, h1), "b1": (h1,), ...}`` of one float
    dtype; state arrays take the same shapes and dtype. ``threads``: threads for the update
    (default: every CPU this process may use).
    """

    def __init__(
        self,
        params: Params,
        lr: float = 0.1,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        threads: int | None = None,
    ) -> None:
        if nesterov and momentum <= 0:
            raise ValueError(NESTEROV_NEEDS_MOMENTUM)
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)
        self.threads = threads or default_threads()
        self.step_count = 0
        self.velocity = {key: np.zeros_like(value) for key, value in params.items()}
        self._scratch = {key: np.empty_like(value) for key, value in params.items()}

    def step(self, params: Params, grads: Params, lr: float | None = None) -> None:
        """One update of every array in ``params``, in place; ``grads`` is left unchanged."""
        lr = self.lr if lr is None else float(lr)
        momentum, nesterov = self.momentum, self.nesterov
        self.step_count += 1

        def update(p, g, v, scratch, weight_decay):
            if weight_decay:
                np.multiply(p, weight_decay, out=scratch)
                scratch += g
                g = scratch
            if momentum:
                v *= momentum
                v += g
                if nesterov:
                    # p -= lr * g + lr * momentum * v, in two in-place passes through scratch.
                    np.multiply(g, lr, out=scratch)
                    p -= scratch
                    np.multiply(v, lr * momentum, out=scratch)
                else:
                    np.multiply(v, lr, out=scratch)
            else:
                np.multiply(g, lr, out=scratch)
            p -= scratch

        tasks: list[Task] = []
        for key, p in params.items():
            weight_decay = self.weight_decay if decays(key) else 0.0
            arrays = (p, grads[key], self.velocity[key], self._scratch[key])
            tasks += [(update, (*block, weight_decay)) for block in _blocks(arrays)]
        _run_blocks(tasks, self.threads)


class Adam:
    """Adam with decoupled weight decay (AdamW, Loshchilov & Hutter), as PyTorch's ``AdamW``.

    Per parameter ``p`` with gradient ``g`` at step ``t`` (from 1)::

        p *= 1 - lr * weight_decay                  (weights only; decoupled from g)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    With ``weight_decay=0`` this is plain Adam. ``params``/``grads``: dicts of arrays of one
    float dtype; the moments take the same shapes and dtype and are stored scaled
    (``self.m = m / (1 - beta1)``, ``self.v = v / (1 - beta2)``), which saves two passes. ``threads``:
    threads for the update (default: every CPU this process may use).
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        threads: int | None = None,
    ) -> None:
        self.lr = float(lr)
        self.beta1, self.beta2 = (float(beta) for beta in betas)
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.threads = threads or default_threads()
        self.step_count = 0
        self.m = {key: np.zeros_like(value) for key, value in params.items()}
        self.v = {key: np.zeros_like(value) for key, value in params.items()}
        self._scratch = {key: np.empty_like(value) for key, value in params.items()}

    def step(self, params: Params, grads: Params, lr: float | None = None) -> None:
        """One update of every array in ``params``, in place; ``grads`` is left unchanged."""
        lr = self.lr if lr is None else float(lr)
        self.step_count += 1
        t = self.step_count
        beta1, beta2 = self.beta1, self.beta2
        # The moments are stored scaled, m' = m / (1 - beta1) and v' = v / (1 - beta2), so each
        # takes one pass fewer (m' = beta1 m' + g); the constants fold into the last two passes:
        # step * m / (sqrt(v) / c + eps) = step * (1 - beta1) / k * m' / (sqrt(v') + eps / k),
        # with c = sqrt(1 - beta2**t) and k = sqrt(1 - beta2) / c.
        # Python floats, not NumPy float64 scalars, keep float32 arrays float32.
        k = math.sqrt(1.0 - beta2) / math.sqrt(1.0 - beta2**t)
        step_size = lr / (1.0 - beta1**t) * (1.0 - beta1) / k
        eps = self.eps / k

        def update(p, g, m, v, scratch, decay_factor):
            if decay_factor != 1.0:
                p *= decay_factor
            m *= beta1
            m += g
            v *= beta2
            np.multiply(g, g, out=scratch)
            v += scratch
            np.sqrt(v, out=scratch)
            scratch += eps
            np.divide(m, scratch, out=scratch)
            scratch *= step_size
            p -= scratch

        tasks: list[Task] = []
        for key, p in params.items():
            decay_factor = 1.0 - lr * self.weight_decay if decays(key) else 1.0
            arrays = (p, grads[key], self.m[key], self.v[key], self._scratch[key])
            tasks += [(update, (*block, decay_factor)) for block in _blocks(arrays)]
        _run_blocks(tasks, self.threads)


Optimizer = SGD | Adam


def make_optimizer(name: str, params: Params, **kwargs) -> Optimizer:
    """``"sgd"`` or ``"adam"`` (case-insensitive) -> an optimizer for ``params``.

    Keyword arguments go to the class (``lr``, ``weight_decay``, ``momentum``, ``nesterov``,
    ``betas``, ``eps``).
    """
    key = name.lower()
    if key == "sgd":
        return SGD(params, **kwargs)
    if key == "adam":
        return Adam(params, **kwargs)
    raise ValueError(UNKNOWN_OPTIMIZER.format(name=name))


def lr_at(
    step: int,
    total_steps: int,
    base_lr: float,
    schedule: str = "cosine",
    warmup_steps: int = 0,
    step_every: int | None = None,
    step_gamma: float = 0.1,
    min_lr: float = 0.0,
) -> float:
    """Learning rate (a Python float) for ``step`` in ``0 .. total_steps - 1``.

    Warm-up first: ``base_lr * (step + 1) / warmup_steps`` for ``step < warmup_steps``. Then,
    with ``s = step - warmup_steps`` out of ``S = total_steps - warmup_steps``:

    - ``"constant"``: ``base_lr``;
    - ``"cosine"``: ``min_lr + (base_lr - min_lr) * (1 + cos(pi * s / S)) / 2``, from ``base_lr``
      at ``s = 0`` towards ``min_lr`` at the end;
    - ``"step"``: ``base_lr * step_gamma ** (s // step_every)``, ``step_every`` defaulting to
      ``S // 3`` (three phases: two drops over the run).
    """
    if schedule not in SCHEDULES:
        raise ValueError(UNKNOWN_SCHEDULE.format(name=schedule))
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    s = step - warmup_steps
    span = max(total_steps - warmup_steps, 1)
    if schedule == "constant":
        return float(base_lr)
    if schedule == "cosine":
        progress = min(s / span, 1.0)
        return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    every = step_every if step_every else max(span // 3, 1)
    return base_lr * step_gamma ** (s // every)
