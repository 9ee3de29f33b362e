"""What `/predict` costs beyond FastAPI's own floor: the project's API and a bare FastAPI app that
only validates the same request schema (`benchmarks/bare_predict_app.py`), each under uvicorn
(one worker, access log off) and driven by wrk in turn, in the same run.

    .venv/bin/python benchmarks/predict_overhead.py [--seconds 8] [--rounds 2] [--connections 32]
    .venv/bin/python benchmarks/predict_overhead.py --breakdown   # + where a request's CPU goes
    .venv/bin/python benchmarks/predict_overhead.py --baseline ../before  # + another checkout's API

``--baseline DIR`` also serves the API of another checkout of the project (``git worktree add
../before main``) in the same rounds, so a change is measured before and after under one load.

Prints each app's requests/s, p50 and p99 latency and server CPU per request (the median of the
rounds; the apps alternate, so a change in the machine's load reaches both), and the API's rate
as a share of the bare app's. ``--breakdown`` also calls both apps in-process (ASGI, no network)
and times the API's parts: each middleware (around an app that answers at once), the model's
forward pass, the drift score, the metrics, JSON parsing; CPU time of this process, so other load
barely moves it.
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

from doodle.constants import DEFAULT_API_PORT  # noqa: E402
from support.servers import UvicornServer  # noqa: E402

N_BODIES = 64
UVICORN_ARGS = ("--workers", "1", "--no-access-log", "--log-level", "warning")


def start(work: Path, model: Path, bare: bool, checkout: Path = ROOT) -> UvicornServer:
    """One app under uvicorn: the bare app, or the API of ``checkout`` (uvicorn runs there, so
    that checkout's ``serving`` and ``doodle`` are the ones imported)."""
    env = {"DOODLE_MODEL_PATH": str(model), "DOODLE_FEEDBACK_DB": str(work / "feedback.sqlite")}
    if bare:
        server = UvicornServer(
            env=env,
            app="bare_predict_app:create_app",
            extra_args=("--app-dir", str(ROOT / "benchmarks"), *UVICORN_ARGS),
            stop_signal=signal.SIGINT,
        )
    else:
        server = UvicornServer(env=env, extra_args=UVICORN_ARGS, stop_signal=signal.SIGINT, cwd=checkout)
    return server.__enter__()


def measure(server: UvicornServer, bodies: list[str], connections: int, seconds: float) -> dict:
    run_wrk(server.url, "/predict", bodies, 4, 1.0)  # warm up
    cpu_before = cpu_seconds(server.process.pid)
    result = run_wrk(server.url, "/predict", bodies, connections, seconds)
    result["cpu_ms"] = 1000 * (cpu_seconds(server.process.pid) - cpu_before) / max(result["requests"], 1)
    result["rate"] = result["requests"] / result["seconds"]
    return result


def median_of(results: list[dict]) -> dict:
    return {
        key: float(np.median([r[key] for r in results]))
        for key in ("rate", "p50_ms", "p99_ms", "cpu_ms", "errors")
    }


def over_http(args: argparse.Namespace, bodies: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="doodle-overhead-") as tmp:
        work = Path(tmp)
        model, which = model_dir(work)
        print(
            f"model: {which}; {os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.1f}; "
            f"wrk, {args.connections} connections, {args.seconds:g} s, {args.rounds} rounds per app"
        )
        apps = [("API /predict", False, ROOT), ("bare FastAPI, validation only", True, ROOT)]
        if args.baseline is not None:
            apps.insert(1, (f"API /predict of {args.baseline.name}", False, args.baseline.resolve()))
        results: dict[str, list[dict]] = {name: [] for name, _, _ in apps}
        for _ in range(args.rounds):
            for name, bare, checkout in apps:
                server = start(work, model, bare, checkout)
                try:
                    results[name].append(measure(server, bodies, args.connections, args.seconds))
                finally:
                    server.stop()
        print(f"{'app':<40}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>12}{'errors':>8}")
        medians = {name: median_of(rows) for name, rows in results.items()}
        for name, m in medians.items():
            print(
                f"{name:<40}{m['rate']:>8.0f}{m['p50_ms']:>9.2f}{m['p99_ms']:>9.2f}{m['cpu_ms']:>12.3f}{m['errors']:>8.0f}"
            )
        bare_name = "bare FastAPI, validation only"
        bare = medians[bare_name]
        for name, _, _ in apps:
            if name.startswith("API"):
                api = medians[name]
                # Each round's own ratio: the apps of one round ran back to back, under one load.
                rounds = ", ".join(
                    f"{mine['rate'] / floor['rate']:.2f}"
                    for mine, floor in zip(results[name], results[bare_name])
                )
                print(
                    f"{name} / bare: {api['rate'] / bare['rate']:.2f}x the rate (by round: {rounds}); "
                    f"{api['cpu_ms'] - bare['cpu_ms']:+.3f} ms of server CPU per request"
                )
        print(f"load average after: {os.getloadavg()[0]:.1f}")


async def asgi_call(app, body: bytes) -> None:
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", DEFAULT_API_PORT),
        "state": {},
        "headers": [
            (b"host", f"127.0.0.1:{DEFAULT_API_PORT}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
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


async def middleware_costs(app, settings, count: int) -> list[tuple[str, float]]:
    """Each of the API's middlewares around an app that answers at once, minus that app alone:
    CPU µs a layer adds to a request that reached ``/predict``."""
    from fastapi.middleware.cors import CORSMiddleware

    from serving.middleware import BodyLimitMiddleware, MetricsMiddleware
    from serving.routes import router

    async def answer(scope, receive, send):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b"{}"})

    route = next(r for r in router.routes if getattr(r, "path", None) == "/predict")
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "route": route,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"8000")],
    }

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    async def per_call(layer) -> float:
        for _ in range(100):
            await layer(dict(scope), receive, send)
        started = time.process_time()
        for _ in range(count):
            await layer(dict(scope), receive, send)
        return (time.process_time() - started) / count * 1e6

    layers = {
        "MetricsMiddleware": MetricsMiddleware(
            answer, metrics=app.state.serving.metrics, routers=(app.router, router)
        ),
        "CORSMiddleware": CORSMiddleware(
            answer,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type"],
        ),
        "BodyLimitMiddleware": BodyLimitMiddleware(answer, max_bytes=settings.max_body_bytes),
    }
    alone = await per_call(answer)
    return [(name, await per_call(layer) - alone) for name, layer in layers.items()]


def breakdown(args: argparse.Namespace, bodies: list[str], images: np.ndarray) -> None:
    """Per-request CPU of the API's layers and parts, in-process."""
    import orjson
    from bare_predict_app import create_app as create_bare
    from threadpoolctl import threadpool_limits

    from serving import main as serving_main
    from serving.config import Settings
    from serving.schemas import PredictRequest

    encoded = [body.encode() for body in bodies]
    count = args.calls
    with tempfile.TemporaryDirectory(prefix="doodle-overhead-") as tmp:
        work = Path(tmp)
        model_path, _ = model_dir(work)
        os.environ.update(DOODLE_MODEL_PATH=str(model_path), DOODLE_FEEDBACK_DB=str(work / "feedback.sqlite"))
        settings = Settings.from_env()

        def variant():
            app = serving_main.create_app(settings)
            serving_main.load_state(app.state.serving)
            return app

        async def run() -> list[tuple[str, float]]:
            rows = []
            with threadpool_limits(limits=settings.blas_threads, user_api="blas"):
                full = variant()
                bare = create_bare()
                timings: dict[str, list[float]] = {"whole": [], "bare": []}
                # Rounds over both apps in turn, the median of each: the machine's load reaches both.
                for _ in range(args.rounds_in_process):
                    timings["whole"].append(await per_request_us(full, encoded, count))
                    timings["bare"].append(await per_request_us(bare, encoded, count))
                rows.append(("API, whole request", float(np.median(timings["whole"]))))
                for name, cost in await middleware_costs(full, settings, count * args.rounds_in_process):
                    rows.append((f"  {name}", cost))
                rows.append(("bare FastAPI, validation only", float(np.median(timings["bare"]))))
                state = full.state.serving
                model = state.model
                one = [images[i : i + 1] for i in range(len(images))]
                probs = [model.predict(x)[1] for x in one]
                rows.append(
                    (
                        "  model.predict (forward pass, softmax)",
                        part_us(lambda i: model.predict(one[i % len(one)]), count),
                    )
                )
                if hasattr(model, "predict_one_proba"):
                    rows.append(
                        (
                            "  model.predict_one_proba (/predict's)",
                            part_us(lambda i: model.predict_one_proba(one[i % len(one)][0]), count),
                        )
                    )
                if state.drift_reference is not None:
                    rows.append(
                        (
                            "  drift score",
                            part_us(lambda i: state.drift_reference.score(one[i % len(one)]), count),
                        )
                    )
                rows.append(
                    (
                        "  prediction metrics",
                        part_us(
                            lambda i: state.metrics.observe_predictions(
                                probs[i % len(one)].argmax(axis=1), probs[i % len(one)].max(axis=1)
                            ),
                            count,
                        ),
                    )
                )
                rows.append(
                    (
                        "  orjson parse of the body",
                        part_us(lambda i: orjson.loads(encoded[i % len(encoded)]), count),
                    )
                )
                parsed = [orjson.loads(body) for body in encoded]
                rows.append(
                    (
                        "  PredictRequest validation",
                        part_us(lambda i: PredictRequest.model_validate(parsed[i % len(parsed)]), count),
                    )
                )
            return rows

        rows = asyncio.run(run())
    print(
        f"\nin-process, CPU µs per request (median of {args.rounds_in_process} rounds of {count} calls;"
        " a middleware: around an app that answers at once, minus that app):"
    )
    for name, value in rows:
        print(f"  {name:<44}{value:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="wrk duration per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per app, alternating")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--breakdown", action="store_true", help="also time the API's parts in-process")
    parser.add_argument(
        "--calls", type=int, default=1000, help="in-process calls per figure and round (--breakdown)"
    )
    parser.add_argument("--rounds-in-process", type=int, default=5, help="rounds over the apps (--breakdown)")
    parser.add_argument("--no-http", action="store_true", help="skip the wrk runs (with --breakdown)")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another checkout whose API is measured in the same rounds",
    )
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
