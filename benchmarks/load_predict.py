"""Load benchmark of the API: requests per second and p50/p99 latency of single and batch predict.

Starts its own server (uvicorn, one worker, loopback, access log off) and drives it with a fixed
number of concurrent connections for a fixed time. The load generator is wrk (Debian package
``wrk``, a C program with a small Lua script) when it is installed, otherwise an httpx async
client; with the httpx client on a 2-core machine the client itself competes with the server for
the CPU, so its figures are lower bounds. Besides wall-clock figures the script reports the
server's CPU time per request (from /proc), which stays meaningful when other processes share
the machine.

    .venv/bin/python benchmarks/load_predict.py                 # 10 s per scenario, 32 clients
    .venv/bin/python benchmarks/load_predict.py --profile       # + where the server's time goes

Note on the latency target: with N clients each waiting for its answer before sending again,
mean latency = N / throughput (Little's law), so 32 clients at 1,000 req/s wait 32 ms on average
however fast one request is served. The script also runs the same load with 4 clients, where
latency shows the cost of one request rather than the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # support.servers: free ports, uvicorn start and stop

from doodle import paths  # noqa: E402
from doodle.model import mlp, model_io  # noqa: E402
from support.servers import UvicornServer  # noqa: E402

N_BODIES = 64  # distinct images cycled through, so no cache anywhere sees one body repeated

WRK_SCRIPT = """
local bodies = {BODIES}
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "{PATH}", {{["Content-Type"] = "application/json"}},
                    bodies[(counter % #bodies) + 1])
end
done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
                 + summary.errors.write + summary.errors.timeout
  io.write(string.format('RESULT {{"requests": %d, "seconds": %f, "errors": %d, '
      .. '"p50_ms": %f, "p99_ms": %f, "max_ms": %f}}\\n',
      summary.requests, summary.duration / 1e6, errors,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def sample_images(count: int) -> np.ndarray:
    """``(count, 784)`` float32 in [0, 1]: MNIST test digits when the pipeline has run, else
    random sparse strokes of similar ink density."""
    try:
        from doodle.sources.data import load_split

        images, _ = load_split("test", root=str(ROOT / "data" / "prepared"))
        return images[:count].astype(np.float32) / 255.0
    except Exception:
        rng = np.random.default_rng(0)
        ink = rng.random((count, 784)) < 0.19
        return np.where(ink, rng.random((count, 784)), 0.0).astype(np.float32)


def body_for(images: np.ndarray) -> str:
    """The wire format, with 4-decimal numbers as a browser's canvas client would send."""
    rounded = np.round(images.astype(np.float64), 4)
    if len(images) == 1:
        return json.dumps({"image_vector": rounded[0].tolist()}, separators=(",", ":"))
    return json.dumps({"image_vectors": rounded.tolist()}, separators=(",", ":"))


def model_dir(work: Path) -> tuple[Path, str]:
    served = paths.model_path()
    try:
        model = model_io.load_model(served)
        return served, f"{model.version} {model.layer_sizes} from {paths.MODEL_DIR_ENV} or models/"
    except model_io.ModelFileError:
        params = mlp.init_params([784, 256, 10], seed=0)
        model_io.save_model(work / "model", params, normalization={"mean": 0.1307, "std": 0.3081})
        return work / "model", "a seeded random [784, 256, 10] stand-in (no trained model found)"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(model: Path, work: Path, profile_to: Path | None) -> UvicornServer:
    """One uvicorn worker on a free port, access log off; SIGINT on stop lets uvicorn shut down
    cleanly, which also lets cProfile write its file."""
    prefix = [sys.executable, "-m", "cProfile", "-o", str(profile_to), "-m"] if profile_to else None
    server = UvicornServer(
        env={
            "DOODLE_MODEL_PATH": str(model),
            "DOODLE_FEEDBACK_DB": str(work / "feedback.sqlite"),
            "DOODLE_MAX_BATCH": "1024",
        },
        extra_args=("--workers", "1", "--no-access-log", "--log-level", "warning"),
        command_prefix=prefix,
        stop_signal=signal.SIGINT,
    )
    return server.__enter__()  # /healthz answers once the lifespan has loaded the model


def run_wrk(url: str, path: str, bodies: list[str], connections: int, seconds: float) -> dict:
    # Level-2 long brackets: the batch bodies contain "]]", which would end a [[...]] string.
    lua_bodies = "{" + ",".join(f"[==[{b}]==]" for b in bodies) + "}"
    script = WRK_SCRIPT.replace("{{", "{").replace("}}", "}")
    script = script.replace("{BODIES}", lua_bodies).replace("{PATH}", path)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        threads = min(2, connections)
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "-s", handle.name, url + path],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(handle.name)
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


async def run_httpx(url: str, path: str, bodies: list[str], connections: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    encoded = [b.encode() for b in bodies]
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        stop_at = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                response = await client.post(
                    path, content=encoded[i % len(encoded)], headers={"Content-Type": "application/json"}
                )
                latencies.append(time.perf_counter() - start)
                errors += response.status_code != 200
                i += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(connections)))
        elapsed = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return {
        "requests": len(ms),
        "seconds": elapsed,
        "errors": errors,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each scenario")
    parser.add_argument("--connections", type=int, default=32, help="concurrent clients")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch request")
    parser.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument("--profile", action="store_true", help="run the server under cProfile")
    args = parser.parse_args()

    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "httpx"
    images = sample_images(max(N_BODIES, args.batch_size * 4))
    single = [body_for(images[i : i + 1]) for i in range(N_BODIES)]
    batch = [body_for(images[i * args.batch_size : (i + 1) * args.batch_size]) for i in range(4)]

    with tempfile.TemporaryDirectory(prefix="doodle-bench-") as tmp:
        work = Path(tmp)
        model, which = model_dir(work)
        profile_to = work / "server.prof" if args.profile else None
        server = start_server(model, work, profile_to)
        print(
            f"model: {which}; load generator: {client}; {os.cpu_count()} CPUs;"
            f" load average before: {os.getloadavg()[0]:.1f}"
        )
        scenarios = [
            ("predict", "/predict", single, args.connections),
            ("predict", "/predict", single, 4),
            (f"batch x{args.batch_size}", "/predict/batch", batch, args.connections),
        ]
        rows = []
        try:
            # Warm up: first requests import lazily and fill caches.
            run = run_wrk if client == "wrk" else (lambda *a: asyncio.run(run_httpx(*a)))
            run(server.url, "/predict", single, 4, 2)
            for name, path, bodies, connections in scenarios:
                cpu_before = cpu_seconds(server.process.pid)
                result = run(server.url, path, bodies, connections, args.seconds)
                cpu_used = cpu_seconds(server.process.pid) - cpu_before
                rows.append((name, connections, result, cpu_used))
        finally:
            server.stop()

        print(
            f"{'scenario':<12} {'clients':>7} {'requests':>9} {'req/s':>8} {'images/s':>9}"
            f" {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'server CPU ms/req':>18}"
        )
        for name, connections, r, cpu_used in rows:
            per_request = r["requests"] / r["seconds"]
            images_per = per_request * (args.batch_size if name.startswith("batch") else 1)
            print(
                f"{name:<12} {connections:>7} {r['requests']:>9} {per_request:>8.0f} {images_per:>9.0f}"
                f" {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['errors']:>6}"
                f" {1000 * cpu_used / max(r['requests'], 1):>18.3f}"
            )
        print(f"load average after: {os.getloadavg()[0]:.1f}")

        if profile_to is not None and profile_to.exists():
            import pstats

            print("\nserver profile, top 25 by own time:")
            pstats.Stats(str(profile_to)).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
