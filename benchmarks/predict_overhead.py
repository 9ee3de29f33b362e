"""What `/predict` costs beyond FastAPI's own floor: the project's API and a bare FastAPI app that
only validates the same request schema (`benchmarks/bare_predict_app.py`), each under uvicorn
(one worker, access log off) and driven by wrk in turn, in the same run.

    .venv/bin/python benchmarks/predict_overhead.py [--seconds 8] [--rounds 2] [--connections 32]
    .venv/bin/python benchmarks/predict_overhead.py --breakdown   # + where a request's CPU goes

Prints each app's requests/s, p50 and p99 latency and server CPU per request (the median of the
rounds; the apps alternate, so a change in the machine's load reaches both), and the API's rate
as a share of the bare app's. ``--breakdown`` also calls both apps in-process (ASGI, no network)
and times the API's parts: each middleware (by leaving it out), the route, the model's forward
pass, the drift score, the metrics, JSON; CPU time of this process, so other load barely moves it.
Needs wrk (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from load_predict import body_for, cpu_seconds, model_dir, run_wrk, sample_images  # noqa: E402
from support.servers import UvicornServer  # noqa: E402

N_BODIES = 64
UVICORN_ARGS = ("--workers", "1", "--no-access-log", "--log-level", "warning")


def start(work: Path, model: Path, bare: bool) -> UvicornServer:
    env = {"DOODLE_MODEL_PATH": str(model), "DOODLE_FEEDBACK_DB": str(work / "feedback.sqlite")}
    if bare:
        server = UvicornServer(env=env, app="bare_predict_app:create_app",
                               extra_args=("--app-dir", str(ROOT / "benchmarks"), *UVICORN_ARGS),
                               stop_signal=signal.SIGINT)
    else:
        server = UvicornServer(env=env, extra_args=UVICORN_ARGS, stop_signal=signal.SIGINT)
    return server.__enter__()


def measure(server: UvicornServer, bodies: list[str], connections: int, seconds: float) -> dict:
    run_wrk(server.url, "/predict", bodies, 4, 1.0)  # warm up
    cpu_before = cpu_seconds(server.process.pid)
    result = run_wrk(server.url, "/predict", bodies, connections, seconds)
    result["cpu_ms"] = 1000 * (cpu_seconds(server.process.pid) - cpu_before) / max(result["requests"], 1)
    result["rate"] = result["requests"] / result["seconds"]
    return result


def median_of(results: list[dict]) -> dict:
    return {key: float(np.median([r[key] for r in results])) for key in ("rate", "p50_ms", "p99_ms", "cpu_ms", "errors")}


def over_http(args: argparse.Namespace, bodies: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="doodle-overhead-") as tmp:
        work = Path(tmp)
        model, which = model_dir(work)
        print(f"model: {which}; {os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.1f}; "
              f"wrk, {args.connections} connections, {args.seconds:g} s, {args.rounds} rounds per app")
        results: dict[str, list[dict]] = {"API /predict": [], "bare FastAPI, validation only": []}
        for _ in range(args.rounds):
            for name, bare in (("API /predict", False), ("bare FastAPI, validation only", True)):
                server = start(work, model, bare)
                try:
                    results[name].append(measure(server, bodies, args.connections, args.seconds))
                finally:
                    server.stop()
        print(f"{'app':<32}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>12}{'errors':>8}")
        medians = {name: median_of(rows) for name, rows in results.items()}
        for name, m in medians.items():
            print(f"{name:<32}{m['rate']:>8.0f}{m['p50_ms']:>9.2f}{m['p99_ms']:>9.2f}{m['cpu_ms']:>12.3f}{m['errors']:>8.0f}")
        api, bare = medians["API /predict"], medians["bare FastAPI, validation only"]
        print(f"API / bare: {api['rate'] / bare['rate']:.2f}x the rate; "
              f"{api['cpu_ms'] - bare['cpu_ms']:+.3f} ms of server CPU per request")
        print(f"load average after: {os.getloadavg()[0]:.1f}")


async def asgi_call(app, body: bytes) -> None:
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
             "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
             "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    await app(scope, receive, send)
    if sent[0]["status"] != 200:
        raise RuntimeError(f"/predict answered {sent[0]['status']}: {sent[1].get('body', b'')[:200]!r}")


async def per_request_us(app, bodies: list[bytes], count: int) -> float:
    for body in bodies:
        await asgi_call(app, body)
    started = time.process_time()
    for i in range(count):
        await asgi_call(app, bodies[i % len(bodies)])
    return (time.process_time() - started) / count * 1e6


def part_us(function, count: int) -> float:
    started = time.process_time()
    for i in range(count):
        function(i)
    return (time.process_time() - started) / count * 1e6


def breakdown(args: argparse.Namespace, bodies: list[str], images: np.ndarray) -> None:
    """Per-request CPU of the API's layers and parts, in-process."""
    import orjson
    from threadpoolctl import threadpool_limits

    from bare_predict_app import create_app as create_bare
    from serving import main as serving_main
    from serving.config import Settings

    encoded = [body.encode() for body in bodies]
    count = args.calls
    with tempfile.TemporaryDirectory(prefix="doodle-overhead-") as tmp:
        work = Path(tmp)
        model_path, _ = model_dir(work)
        os.environ.update(DOODLE_MODEL_PATH=str(model_path), DOODLE_FEEDBACK_DB=str(work / "feedback.sqlite"))
        settings = Settings.from_env()

        def variant(leave_out: str | None):
            app = serving_main.create_app(settings)
            if leave_out is not None:
                app.user_middleware = [m for m in app.user_middleware if m.cls.__name__ != leave_out]
            serving_main.load_state(app.state.serving)
            return app

        async def run() -> list[tuple[str, float]]:
            rows = []
            with threadpool_limits(limits=settings.blas_threads, user_api="blas"):
                full = variant(None)
                rows.append(("API, whole request", await per_request_us(full, encoded, count)))
                for name in ("MetricsMiddleware", "CORSMiddleware", "BodyLimitMiddleware"):
                    without = await per_request_us(variant(name), encoded, count)
                    rows.append((f"  {name}", rows[0][1] - without))
                rows.append(("bare FastAPI, validation only", await per_request_us(create_bare(), encoded, count)))
                state = full.state.serving
                model = state.model
                one = [images[i : i + 1] for i in range(len(images))]
                probs = [model.predict(x)[1] for x in one]
                rows.append(("  model.predict (forward pass, softmax)", part_us(lambda i: model.predict(one[i % len(one)]), count)))
                if state.drift_reference is not None:
                    rows.append(("  drift score", part_us(lambda i: state.drift_reference.score(one[i % len(one)]), count)))
                rows.append(("  prediction metrics", part_us(lambda i: state.metrics.observe_predictions(
                    probs[i % len(one)].argmax(axis=1), probs[i % len(one)].max(axis=1)), count)))
                rows.append(("  orjson parse of the body", part_us(lambda i: orjson.loads(encoded[i % len(encoded)]), count)))
            return rows

        rows = asyncio.run(run())
    print(f"\nin-process, CPU µs per request ({count} calls each; layers: whole request minus the request without it):")
    for name, value in rows:
        print(f"  {name:<44}{value:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="wrk duration per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per app, alternating")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--breakdown", action="store_true", help="also time the API's parts in-process")
    parser.add_argument("--calls", type=int, default=3000, help="in-process calls per figure (--breakdown)")
    parser.add_argument("--no-http", action="store_true", help="skip the wrk runs (with --breakdown)")
    args = parser.parse_args()
    images = sample_images(N_BODIES)
    bodies = [body_for(images[i : i + 1]) for i in range(N_BODIES)]
    if not args.no_http:
        if shutil.which("wrk") is None:
            sys.exit("wrk is needed: apt-get install wrk (make system-deps)")
        over_http(args, bodies)
    if args.breakdown:
        breakdown(args, bodies, images)


if __name__ == "__main__":
    main()
