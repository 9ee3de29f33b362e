"""Batch scoring throughput: `doodle.reading.score` on Spark (local[1], local[2], a standalone cluster)
beside the same work in one process and beside the API's `/predict/batch`, in images per second.

    .venv/bin/python benchmarks/spark_score.py [--count 100000] [--modes single,local1,local2,cluster,api]

The images are doodles: MNIST test digits redrawn with a round pen on 280x280 canvases
(`doodle.canvas.doodles.draw_doodle`, seeded), PNG-encoded, in one Parquet file with an ``id`` and a
``png`` column, cached under .cache/spark_score/. To keep generation cheap, 10,000 distinct
drawings are made once and repeated up to ``--count``; every copy is decoded and
preprocessed again, so the work per image is the same. Needs `models/` and `data/prepared/`
(`make pipeline`).

Every mode does the same work per image: decode the PNG, `canvas_to_input`, one forward pass
per Arrow batch (10,000 rows), build the result batch. The single-process run splits its time
into decode / preprocessing / matmul / Arrow; "Spark floor" is a mapInArrow pass over the same
Parquet that does no scoring (scan + Arrow to Python and back + task scheduling).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from threadpoolctl import threadpool_limits

from doodle.canvas import doodles
from doodle.model.model_io import load_model
from doodle.paths import ROOT
from doodle.reading import score
from doodle.sources.data import load_split

CACHE = ROOT / ".cache" / "spark_score"
DISTINCT = 10_000
BATCH_ROWS = 10_000  # spark.sql.execution.arrow.maxRecordsPerBatch's default
MODES = ("single", "floor", "local1", "local2", "cluster", "api")


def distinct_drawings(seed: int) -> list[bytes]:
    """`DISTINCT` doodles as PNG bytes, made once per seed and cached."""
    path = CACHE / f"distinct-{DISTINCT}-{seed}.parquet"
    if path.exists():
        return pq.read_table(path).column("png").to_pylist()
    CACHE.mkdir(parents=True, exist_ok=True)
    images, _ = load_split("test")
    started = time.perf_counter()
    pngs = []
    for i in range(DISTINCT):
        canvas = doodles.draw_doodle(
            images[i % len(images)].reshape(28, 28), np.random.default_rng([seed, i])
        )
        buffer = io.BytesIO()
        Image.fromarray(canvas).save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    temporary = path.with_suffix(".tmp")
    pq.write_table(pa.table({"png": pa.array(pngs, pa.binary())}), temporary)
    os.replace(temporary, path)
    print(
        f"generated {DISTINCT} distinct doodles in {time.perf_counter() - started:.0f} s"
        f" ({np.mean([len(p) for p in pngs]) / 1024:.1f} KiB each) -> {path.relative_to(ROOT)}"
    )
    return pngs


def drawings_parquet(count: int, seed: int) -> Path:
    """The cached Parquet of ``count`` doodles (``id`` int64, ``png`` binary), the distinct ones
    repeated; row groups of 2,000 rows so that Spark can split the file."""
    path = CACHE / f"doodles-{count}-{seed}.parquet"
    if path.exists():
        return path
    pngs = distinct_drawings(seed)
    column = pa.array([pngs[i % len(pngs)] for i in range(count)], pa.binary())
    table = pa.table({"id": pa.array(np.arange(count, dtype=np.int64)), "png": column})
    temporary = path.with_suffix(".tmp")
    pq.write_table(table, temporary, row_group_size=2_000)
    os.replace(temporary, path)
    return path


def tree_cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) of this process and every process below it, by kind: this
    driver, the JVM, the Python workers (PySpark's daemon and the workers it forks, with those
    that have already exited)."""
    seconds = {"driver": 0.0, "JVM": 0.0, "Python workers": 0.0}
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
            kind = (
                "driver" if process.pid == me.pid else "JVM" if "java" in process.name() else "Python workers"
            )
        except psutil.NoSuchProcess:
            continue
        seconds[kind] += times.user + times.system + times.children_user + times.children_system
    return seconds


def single_process(model, path: Path) -> tuple[float, float, score.Timings, float]:
    """score_batch over the file in one process, BLAS on one thread -> (wall seconds, CPU
    seconds, phase timings, seconds reading the Parquet)."""
    timings = score.Timings()
    read_seconds = 0.0
    started, cpu_started = time.perf_counter(), time.process_time()
    with threadpool_limits(limits=1, user_api="blas"):
        batches = pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS)
        while True:
            reading = time.perf_counter()
            batch = next(batches, None)
            read_seconds += time.perf_counter() - reading
            if batch is None:
                break
            score.score_batch(model, batch, timings)
    return time.perf_counter() - started, time.process_time() - cpu_started, timings, read_seconds


def _floor_partition(batches):
    for batch in batches:
        yield pa.record_batch({"n": pa.array([batch.num_rows], pa.int64())})


def spark_run(spark, model, path: Path, floor: bool = False) -> tuple[float, dict[str, float]]:
    """(wall seconds, CPU seconds of the driver, its JVM and the Python workers) to score (or,
    for the floor, just stream to Python) every row; a noop sink runs the whole plan without
    writing."""
    images = score.read_images(spark, path)
    if path.stat().st_size > 10 << 20:
        print(f"  {spark.sparkContext.master}: {images.rdd.getNumPartitions()} tasks", flush=True)
    result = images.mapInArrow(_floor_partition, "n long") if floor else score.score_images(images, model)
    started, cpu_started = time.perf_counter(), tree_cpu_seconds()
    result.write.format("noop").mode("overwrite").save()
    cpu_ended = tree_cpu_seconds()
    return time.perf_counter() - started, {kind: cpu_ended[kind] - cpu_started[kind] for kind in cpu_ended}


def spark_mode(
    master: str, model, path: Path, warmup: Path, floor: bool = False
) -> tuple[float, tuple[float, dict[str, float]], int]:
    """(session start seconds, (scoring seconds, their CPU seconds by process), task slots) for
    one master."""
    from doodle.sources.spark_prep import spark_session

    started = time.perf_counter()
    # The scoring command's session, its JVM flags (conf/spark/spark-defaults.conf) included.
    spark = spark_session(master, "2g", app_name="doodle-score-bench")
    start_seconds = time.perf_counter() - started
    try:
        slots = spark.sparkContext.defaultParallelism
        spark_run(spark, model, warmup, floor)  # Python workers started, broadcast shipped
        return start_seconds, spark_run(spark, model, path, floor), slots
    finally:
        spark.stop()


def api_batch(model_dir: Path, path: Path, seconds: float = 10.0, clients: int = 2) -> float:
    """/predict/batch images/s on a real uvicorn: batches of 1,024 already-preprocessed vectors
    (decoding and preprocessing happen here, untimed), posted by ``clients`` threads."""
    import httpx
    import orjson

    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "serving")]
    from serving_helpers import run_server

    batch = next(pq.ParquetFile(path).iter_batches(batch_size=1024, columns=["png"]))
    vectors = np.stack([score.to_input(value, "png") for value in batch.column("png").to_pylist()])
    body = orjson.dumps({"image_vectors": vectors.tolist()})
    with (
        tempfile.TemporaryDirectory() as tmp,
        run_server(
            Path(tmp), model_dir, DOODLE_MAX_BATCH="1024", DOODLE_MAX_BODY_BYTES=str(64 << 20)
        ) as server,
    ):
        counts = [0] * clients
        deadline = time.perf_counter() + seconds

        def client(slot: int) -> None:
            with httpx.Client(base_url=server.url, timeout=60) as http:
                while time.perf_counter() < deadline:
                    response = http.post(
                        "/predict/batch", content=body, headers={"content-type": "application/json"}
                    )
                    response.raise_for_status()
                    counts[slot] += len(vectors)

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(counts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="images to score")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--model", default=str(ROOT / "models"))
    parser.add_argument(
        "--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}"
    )
    args = parser.parse_args()
    modes = args.modes.split(",")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    model = load_model(args.model)
    path = drawings_parquet(args.count, args.seed)
    warmup = drawings_parquet(1000, args.seed)
    rows: list[tuple[str, int, float, float, str]] = []
    rates: dict[str, float] = {}
    cpu_per_image: dict[str, float] = {}
    cpu_split: dict[str, dict[str, float]] = {}

    def record(name: str, slots: int, seconds: float, cpu: float | dict[str, float], note: str = "") -> None:
        if isinstance(cpu, dict):
            cpu_split[name] = cpu
        cpu_seconds = sum(cpu.values()) if isinstance(cpu, dict) else cpu
        rates[name] = args.count / seconds
        cpu_per_image[name] = cpu_seconds / args.count
        rows.append((name, slots, seconds, cpu_seconds, note))
        print(
            f"  {name}: {args.count / seconds:,.0f} images/s, {args.count / cpu_seconds:,.0f} per CPU second",
            flush=True,
        )

    if "single" in modes:
        seconds, cpu_seconds, timings, read_seconds = single_process(model, path)
        record("single process (NumPy)", 1, seconds, cpu_seconds)
    if "floor" in modes:
        start, (seconds, cpu), slots = spark_mode("local[2]", model, path, warmup, floor=True)
        record("Spark floor, local[2] (no scoring)", slots, seconds, cpu)
    for mode, master in (("local1", "local[1]"), ("local2", "local[2]")):
        if mode in modes:
            start, (seconds, cpu), slots = spark_mode(master, model, path, warmup)
            record(f"Spark {master}", slots, seconds, cpu, f"session start {start:.1f} s")
    if "cluster" in modes:
        sys.path.insert(0, str(ROOT / "tests"))  # support: the standalone cluster the cluster test starts
        from support.spark_cluster import standalone_cluster

        with (
            tempfile.TemporaryDirectory() as tmp,
            standalone_cluster(Path(tmp), cores=2, memory="2g") as cluster,
        ):
            start, (seconds, cpu), slots = spark_mode(cluster.master_url, model, path, warmup)
        record(
            "Spark standalone, 1 worker x 2 cores",
            slots,
            seconds,
            cpu,
            f"session start {start:.1f} s",
        )
    if "api" in modes:
        rate = api_batch(Path(args.model), path)
        rows.append(
            ("/predict/batch, 2 clients (vectors: no decode/preprocessing)", 1, args.count / rate, 0.0, "")
        )
        rates["api"] = rate
        print(f"  api: {rate:,.0f} images/s", flush=True)

    print(
        f"\nload average: {' '.join(f'{value:.2f}' for value in os.getloadavg())}; CPUs: {os.cpu_count()};"
        f" {args.count:,} doodles, model {model.version} {model.layer_sizes}"
    )
    # Per core: images per CPU second of every process the run used (for Spark the driver, its JVM
    # and the Python workers), which a loaded machine distorts far less than wall-clock rates.
    print(f"{'run':<62}{'slots':>6}{'seconds':>9}{'images/s':>10}{'CPU ms/image':>14}{'per core':>10}")
    for name, slots, seconds, cpu_seconds, note in rows:
        per_core = f"{args.count / cpu_seconds:>10,.0f}" if cpu_seconds else f"{'':>10}"
        cpu_ms = f"{cpu_seconds / args.count * 1e3:>14.3f}" if cpu_seconds else f"{'':>14}"
        print(f"{name:<62}{slots:>6}{seconds:>9.1f}{args.count / seconds:>10,.0f}{cpu_ms}{per_core}  {note}")
    base = rates.get("single process (NumPy)")
    if base:
        print("\nratio to single-process preprocessing + predict (wall clock):")
        for name, rate in rates.items():
            print(f"  {name:<60}{rate / base:>6.2f}x")
    if "single" in modes:
        # The phases' shares of the wall clock, applied to the CPU time per image.
        stages = (
            ("read (Parquet -> Arrow batch)", read_seconds),
            ("decode (PNG -> array)", timings.decode),
            ("preprocess (canvas_to_input)", timings.preprocess),
            ("matmul (forward pass, softmax, top two)", timings.predict),
            ("Arrow (columns in and out), the loop's own work", timings.arrow),
        )
        total = sum(value for _, value in stages)
        cpu_us = cpu_per_image["single process (NumPy)"] * 1e6
        print("\nwhere a single process spends its CPU (per image):")
        for name, value in stages:
            print(f"  {name:<50}{value / total * cpu_us:>8.0f} us  {value / total:>5.1%}")
        print(
            f"  CPU time per image {cpu_us / 1e3:.3f} ms: one idle core would score"
            f" {args.count / (cpu_us * args.count / 1e6):,.0f} images/s"
        )
        for name in ("Spark floor, local[2] (no scoring)", "Spark local[1]", "Spark local[2]"):
            if name in cpu_per_image:
                extra = cpu_per_image[name] * 1e6 - (0 if "floor" in name else cpu_us)
                what = "scan + Arrow to Python and back" if "floor" in name else "beyond the single process"
                print(f"  {name}: {extra:.0f} us of CPU per image {what}")
    for name, split in cpu_split.items():
        parts = ", ".join(f"{kind} {value / args.count * 1e6:.0f} us" for kind, value in split.items())
        print(f"  {name}, CPU per image by process: {parts}")


if __name__ == "__main__":
    main()
