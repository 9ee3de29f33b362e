"""Training throughput of the NumPy MLP against the identical MLP in PyTorch on the CPU.

One training step is forward + softmax cross-entropy + backward + Adam update, on a fixed batch
of random float32 images. Both sides get the same layer sizes (params.yaml's ``train`` section,
or ``--hidden``), the same starting weights and the same thread count (PyTorch's
``set_num_threads``, threadpoolctl for NumPy's BLAS and the optimizer's own threads). Rounds of
ours and PyTorch's alternate, after a warm-up, so a change in the machine's load hits both; the
best round of each counts (on a shared machine the best round is the least disturbed one).

Our step runs in two modes: BLAS using the threads (``shards=1``), and the batch split into one
shard per thread, each with single-threaded BLAS (`sharded_loss_and_grads` below, which sums
the shards' `mlp.loss_and_grads` and is checked against the whole batch before timing). On a
quiet machine they are close; when another process holds a core, multi-threaded BLAS stalls at
every matrix product waiting for its descheduled thread, and the sharded step degrades gently.

Besides samples per second it prints our achieved GFLOP/s (2*m*n*k per matrix product computed:
the forward pass once, the backward pass twice less the unneeded gradient of the images) and the
float32 GEMM peak of this machine, measured here with a large ``np.matmul``, so the fraction of
the peak we reach is explicit.

    .venv/bin/python benchmarks/train_throughput.py                     # batch 128 and 512
    .venv/bin/python benchmarks/train_throughput.py --threads 1 --hidden 256,256 --profile

On a busy machine, ``--threads 1 --clock cpu`` times each side by the CPU time of this process
instead of the wall clock: other processes then barely change the figures (with more threads,
busy-waiting BLAS and OpenMP threads would count as work, so use the wall clock there).

PyTorch is an optional dependency (``pip install -e .[bench]`` or ``make bench-deps``); without
it only our figures are printed.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from doodle.model import mlp, optim  # noqa: E402
from doodle.model.train import TrainConfig  # noqa: E402


def hidden_from_params() -> list[int]:
    """Hidden layer sizes of params.yaml's train section (`doodle.model.train.TrainConfig.hidden_sizes`)."""
    return TrainConfig.from_params_file(ROOT / "params.yaml").hidden_sizes


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


def gemm_peak_gflops(size: int = 2048, repeats: int = 7) -> float:
    """Best float32 GFLOP/s of ``np.matmul`` on two ``size x size`` matrices."""
    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    out = np.empty((size, size), dtype=np.float32)
    np.matmul(a, b, out=out)  # wakes the BLAS threads
    best = min(_timed(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(function) -> float:
    start = clock()
    function()
    return clock() - start


def flops_per_step(layer_sizes: list[int], batch_size: int) -> int:
    """Matrix-product FLOPs of one step, 2*m*n*k per product actually computed.

    Forward: one product per layer. Backward: ``dW_l = h_{l-1}^T dz_l`` for every layer and
    ``dh_{l-1} = dz_l W_l^T`` for every layer but the first (nobody needs the gradient of the
    images; PyTorch skips it too). The rule of thumb "backward = 2x forward" would count that
    product as well and overstate the rate by up to a fifth for these shapes.
    """
    products = [2 * batch_size * fan_in * fan_out for fan_in, fan_out in zip(layer_sizes, layer_sizes[1:])]
    return 3 * sum(products) - products[0]


_shard_executors: dict[int, ThreadPoolExecutor] = {}


def sharded_loss_and_grads(params, x, y, workspaces: list[mlp.Workspace]):
    """Mean loss and gradients of the whole batch from one row block per workspace, each through
    `mlp.loss_and_grads` in its own thread with single-threaded BLAS, weighted by its share."""
    n, shards = x.shape[0], len(workspaces)
    bounds = [n * i // shards for i in range(shards + 1)]

    def one_shard(index: int):
        start, stop = bounds[index], bounds[index + 1]
        loss, grads, _ = mlp.loss_and_grads(params, x[start:stop], y[start:stop], workspace=workspaces[index])
        share = (stop - start) / n
        for grad in grads.values():
            grad *= share
        return loss * share, grads

    executor = _shard_executors.get(shards)
    if executor is None:
        executor = _shard_executors[shards] = ThreadPoolExecutor(shards - 1, thread_name_prefix="mlp-shard")
    with threadpool_limits(limits=1, user_api="blas"):
        futures = [executor.submit(one_shard, index) for index in range(1, shards)]
        loss, grads = one_shard(0)
        for future in futures:
            shard_loss, shard_grads = future.result()
            loss += shard_loss
            for key, grad in grads.items():
                grad += shard_grads[key]
    return loss, grads


def check_sharding(layer_sizes, batch, labels, seed, shards) -> None:
    """The sharded step must give the whole batch's loss and gradients before it is timed."""
    params = mlp.init_params(layer_sizes, seed)
    loss, grads, _ = mlp.loss_and_grads(params, batch, labels)
    grads = {key: value.copy() for key, value in grads.items()}
    sharded_loss, sharded_grads = sharded_loss_and_grads(
        params, batch, labels, [mlp.Workspace() for _ in range(shards)]
    )
    assert abs(sharded_loss - loss) <= 1e-5 * abs(loss), (sharded_loss, loss)
    for key, grad in grads.items():
        np.testing.assert_allclose(sharded_grads[key], grad, rtol=1e-3, atol=1e-6)


def numpy_stepper(layer_sizes, batch, labels, seed, threads, shards=1):
    params = mlp.init_params(layer_sizes, seed)
    optimizer = optim.Adam(params, lr=1e-3, threads=threads)
    workspace = mlp.Workspace()
    shard_workspaces = [mlp.Workspace() for _ in range(shards)]

    def step() -> None:
        if shards > 1 and len(batch) >= 2 * shards:
            _, grads = sharded_loss_and_grads(params, batch, labels, shard_workspaces)
        else:
            _, grads, _ = mlp.loss_and_grads(params, batch, labels, workspace=workspace)
        optimizer.step(params, grads)

    return step, params


def torch_stepper(torch, params, batch, labels):
    layers = []
    count = mlp.n_layers(params)
    for i in range(1, count + 1):
        weight = params[f"W{i}"]
        linear = torch.nn.Linear(weight.shape[0], weight.shape[1])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(weight.T.copy()))
            linear.bias.copy_(torch.from_numpy(params[f"b{i}"]))
        layers.append(linear)
        if i < count:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_function = torch.nn.CrossEntropyLoss()
    x = torch.from_numpy(batch)
    y = torch.from_numpy(labels)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_function(model(x), y)
        loss.backward()
        optimizer.step()

    return step


def best_rate(step, batch_size: int, steps_per_round: int) -> float:
    """Samples per second of the fastest round of ``steps_per_round`` steps."""
    start = clock()
    for _ in range(steps_per_round):
        step()
    return batch_size * steps_per_round / (clock() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--hidden", help="hidden layer sizes, comma-separated (default: params.yaml's train.hidden_sizes)"
    )
    parser.add_argument("--batch-sizes", default="128,512", help="comma-separated (default 128,512)")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="threads for both (default: all CPUs)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per side and batch size")
    parser.add_argument("--seconds", type=float, default=1.0, help="rough length of one round")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="wall (default) or cpu time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-torch", action="store_true", help="time our MLP only")
    parser.add_argument("--profile", action="store_true", help="cProfile our steps at the first batch size")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]

    hidden = [int(size) for size in args.hidden.split(",")] if args.hidden else hidden_from_params()
    layer_sizes = [784, *hidden, 10]
    batch_sizes = [int(size) for size in args.batch_sizes.split(",")]
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("PyTorch is not installed (pip install -e .[bench]); timing our MLP only")
    if torch is not None:
        torch.set_num_threads(args.threads)

    load_before = os.getloadavg()
    with threadpool_limits(limits=args.threads, user_api="blas"):
        peak = gemm_peak_gflops()
        rows = []
        for batch_size in batch_sizes:
            rng = np.random.default_rng(args.seed)
            batch = rng.random((batch_size, 784), dtype=np.float32)
            labels = rng.integers(0, 10, batch_size)
            if args.threads > 1:
                check_sharding(layer_sizes, batch, labels, args.seed, args.threads)
            ours, params = numpy_stepper(layer_sizes, batch, labels, args.seed, args.threads)
            # The same step with the batch split over the threads, each with one BLAS thread.
            sharded, _ = numpy_stepper(layer_sizes, batch, labels, args.seed, args.threads, args.threads)
            steppers = {"ours": ours, "sharded": sharded}
            if torch is not None:
                steppers["torch"] = torch_stepper(torch, params, batch, labels)
            # Warm-up: first-touch of buffers, BLAS and OpenMP thread start, PyTorch's allocator.
            warm_up_start = time.perf_counter()
            for _ in range(5):
                for step in steppers.values():
                    step()
            seconds_per_step = (time.perf_counter() - warm_up_start) / 5 / len(steppers)
            steps_per_round = max(3, int(args.seconds / seconds_per_step))
            rates = {name: [] for name in steppers}
            for _ in range(args.rounds):
                for name, step in steppers.items():
                    rates[name].append(best_rate(step, batch_size, steps_per_round))
            best = {name: max(values) for name, values in rates.items()}
            best.setdefault("torch", float("nan"))
            rows.append((batch_size, best, rates))
        if args.profile:
            profile_steps(layer_sizes, batch_sizes[0], args.seed, args.threads)
    load_after = os.getloadavg()

    sizes = "-".join(str(size) for size in layer_sizes)
    print(
        f"MLP {sizes}, Adam, float32, {args.threads} thread(s); best of {args.rounds} rounds, {args.clock} clock"
    )
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1-minute)")
    print(f"float32 GEMM peak (np.matmul 2048^3, best of 7): {peak:.1f} GFLOP/s")
    print()
    print(
        "| batch | ours samples/s | ours, batch shards | PyTorch samples/s | ours / PyTorch "
        "| ours GFLOP/s | % of GEMM peak |"
    )
    print("|------:|------:|------:|------:|------:|------:|------:|")
    for batch_size, best, _ in rows:
        ours_best = max(best["ours"], best["sharded"])
        gflops = flops_per_step(layer_sizes, batch_size) * ours_best / batch_size / 1e9
        print(
            f"| {batch_size} | {best['ours']:,.0f} | {best['sharded']:,.0f} | {best['torch']:,.0f} "
            f"| {ours_best / best['torch']:.2f}x | {gflops:.1f} | {100 * gflops / peak:.0f} % |"
        )
    print()
    print("ours: BLAS uses the threads; batch shards: one shard per thread, one BLAS thread")
    print("each; ratio, GFLOP/s and % of peak use the faster of the two.")
    for batch_size, _, rates in rows:
        spreads = ", ".join(
            f"{name} {100 * (max(values) - min(values)) / max(values):.0f} %"
            for name, values in rates.items()
        )
        print(f"batch {batch_size}: rounds vary (best to worst) by {spreads}")


def profile_steps(layer_sizes, batch_size, seed, threads, steps: int = 50) -> None:
    """Where one step's time goes, by function (wall-clock, so BLAS threads count once)."""
    rng = np.random.default_rng(seed)
    batch = rng.random((batch_size, 784), dtype=np.float32)
    labels = rng.integers(0, 10, batch_size)
    params = mlp.init_params(layer_sizes, seed)
    optimizer = optim.Adam(params, threads=threads)
    workspace = mlp.Workspace()
    logits, cache = mlp.forward_train(params, batch, workspace)
    timings = {"forward": 0.0, "loss": 0.0, "backward": 0.0, "adam": 0.0}
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        t0 = time.perf_counter()
        logits, cache = mlp.forward_train(params, batch, workspace)
        t1 = time.perf_counter()
        _, dlogits = mlp.softmax_cross_entropy(logits, labels)
        t2 = time.perf_counter()
        grads = mlp.backward(params, cache, dlogits, workspace)
        t3 = time.perf_counter()
        optimizer.step(params, grads)
        t4 = time.perf_counter()
        for name, seconds in zip(timings, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            timings[name] += seconds
    profiler.disable()
    total = sum(timings.values())
    print(
        f"\nbatch {batch_size}, {steps} steps: "
        + ", ".join(
            f"{name} {1e3 * seconds / steps:.2f} ms ({100 * seconds / total:.0f} %)"
            for name, seconds in timings.items()
        )
    )
    pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
