"""One replica's /predict and /feedback rates with its corrections in SQLite and in PostgreSQL,
measured in one run as a ratio.

Starts a real PostgreSQL (Debian's package, `tests/support/postgres.py`) and two API servers on
the same model, one with the SQLite file (the default) and one with ``DOODLE_FEEDBACK_URL``, then
drives each in turn with wrk (or httpx) for the same time, alternating the two over several
rounds so that a change in the machine's load hits both alike. Reports requests per second and
the server's CPU time per request, and the PostgreSQL/SQLite ratio of each.

    .venv/bin/python benchmarks/replica_rate.py [--seconds 8] [--rounds 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from load_predict import N_BODIES, body_for, cpu_seconds, model_dir, run_httpx, run_wrk, sample_images  # noqa: E402

from support.postgres import PostgresServer  # noqa: E402
from support.servers import UvicornServer  # noqa: E402


def start(model: Path, work: Path, extra: dict[str, str]) -> UvicornServer:
    env = {"DOODLE_MODEL_PATH": str(model), "DOODLE_FEEDBACK_DB": str(work / "feedback.sqlite"), **extra}
    server = UvicornServer(
        env=env,
        extra_args=("--workers", "1", "--no-access-log", "--log-level", "warning"),
        stop_signal=signal.SIGINT,
        log_path=work / "server.log",
    )
    return server.__enter__()


def feedback_body(image_body: str, index: int) -> str:
    """A correction of the same image: digits vary so rows differ."""
    return image_body[:-1] + f',"predicted_digit":{index % 10},"actual_digit":{(index * 3) % 10}}}'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="duration of each measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two servers")
    parser.add_argument("--connections", type=int, default=32, help="concurrent clients")
    parser.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto")
    args = parser.parse_args()
    client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "httpx")
    run = run_wrk if client == "wrk" else (lambda *a: asyncio.run(run_httpx(*a)))
    images = sample_images(N_BODIES)
    predict_bodies = [body_for(images[i : i + 1]) for i in range(N_BODIES)]
    feedback_bodies = [feedback_body(body, i) for i, body in enumerate(predict_bodies)]

    with tempfile.TemporaryDirectory(prefix="doodle-replica-bench-") as tmp, PostgresServer() as postgres:
        work = Path(tmp)
        model, which = model_dir(work)
        (work / "sqlite").mkdir()
        (work / "postgres").mkdir()
        servers = {
            "sqlite": start(model, work / "sqlite", {}),
            "postgres": start(
                model, work / "postgres", {"DOODLE_FEEDBACK_URL": postgres.create_database("bench")}
            ),
        }
        print(
            f"model: {which}; load generator: {client}; {os.cpu_count()} CPUs;"
            f" load average before: {os.getloadavg()[0]:.1f}"
        )
        totals = {(store, route): [0, 0.0, 0.0, 0] for store in servers for route in ("predict", "feedback")}
        try:
            for server in servers.values():
                run(server.url, "/predict", predict_bodies, 4, 2)  # warm up
            for _ in range(args.rounds):
                for route, bodies in (("predict", predict_bodies), ("feedback", feedback_bodies)):
                    for store, server in servers.items():
                        cpu_before = cpu_seconds(server.process.pid)
                        result = run(server.url, f"/{route}", bodies, args.connections, args.seconds)
                        total = totals[(store, route)]
                        total[0] += result["requests"]
                        total[1] += result["seconds"]
                        total[2] += cpu_seconds(server.process.pid) - cpu_before
                        total[3] += result["errors"]
        finally:
            for server in servers.values():
                server.stop()
        # What the servers logged about failures (wrk's "errors" also count its own 2 s timeouts).
        for store, server in servers.items():
            log = server.log()
            print(
                f"{store} server log: {log.count('feedback not stored')} corrections not stored,"
                f" {log.count('Traceback')} tracebacks"
            )

    print(f"{'route':<9} {'store':<9} {'requests':>9} {'req/s':>8} {'server CPU ms/req':>18} {'errors':>6}")
    rates = {}
    for (store, route), (requests, seconds, cpu, errors) in sorted(
        totals.items(), key=lambda kv: kv[0][::-1]
    ):
        rates[(store, route)] = (requests / seconds, 1000 * cpu / max(requests, 1))
        print(
            f"{route:<9} {store:<9} {requests:>9} {requests / seconds:>8.0f} {1000 * cpu / max(requests, 1):>18.3f}"
            f" {errors:>6}"
        )
    for route in ("predict", "feedback"):
        (pg_rate, pg_cpu), (lite_rate, lite_cpu) = rates[("postgres", route)], rates[("sqlite", route)]
        print(
            f"{route}: PostgreSQL / SQLite rate {pg_rate / lite_rate:.2f}x, CPU per request {pg_cpu / lite_cpu:.2f}x"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
