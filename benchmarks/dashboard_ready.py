"""Dashboard start-up: from navigation to a ready pad, in headless Chromium, and the memory of
the warm kernel pool.

Voilà serves the dashboard as `make run` does (conf/voila/voila.py: pre-heated kernels, the
default pool for this machine unless --pool is given). Once the pool is warm, each of --loads
page loads opens a new tab, times navigation -> pad visible and the kernel's first answer on the
page (the result panel, the bars and the "why" views), then closes the tab as a visitor does.
Two patterns: "spaced" waits for the pool to be warm again between loads (visitors a few seconds
apart), "burst" loads back to back (the pool drains, later loads start kernels of their own).
Prints p50/p95/max per pattern and the resident memory of the warm pool.

    .venv/bin/python benchmarks/dashboard_ready.py [--loads 20] [--pool N] [--pattern spaced|burst|both]
        [--visits first|return|both]

Needs a trained model (models/ or DOODLE_MODEL_PATH) and Chromium.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # support: the Voilà and browser driver

from doodle.dashboard_server import POOL_ENV, settings  # noqa: E402
from doodle.model_io import load_model  # noqa: E402
from doodle.paths import model_path  # noqa: E402
from support.browser import DashboardPage, launch_chromium  # noqa: E402
from support.voila import VoilaServer  # noqa: E402


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.0f} MiB"


def pool_memory(server: VoilaServer) -> tuple[list[int], int]:
    """Resident bytes of each kernel, and of Voilà itself."""
    import psutil

    kernels = [process.memory_info().rss for process in server.kernel_processes()]
    return kernels, psutil.Process(server.process.pid).memory_info().rss


def wait_until_warm(server: VoilaServer, pool: int) -> float:
    """Wait until ``pool`` kernels run and have gone quiet (pre-heating runs the notebook, which
    takes a few seconds of CPU); returns the seconds waited."""
    import psutil

    start = time.monotonic()
    server.wait_for_kernel_count(pool, timeout_s=180)
    while time.monotonic() - start < 180:
        kernels = server.kernel_processes()
        try:
            before = sum(k.cpu_times().user + k.cpu_times().system for k in kernels)
            time.sleep(0.5)
            after = sum(k.cpu_times().user + k.cpu_times().system for k in kernels)
        except psutil.Error:
            continue
        if len(kernels) == pool and after - before < 0.05:
            break
    return time.monotonic() - start


def timed_loads(server: VoilaServer, browser, loads: int, pool: int, *, wait_for_pool: bool,
                first_visit: bool) -> list[float]:
    """Seconds from navigation to a ready pad for each of ``loads`` new tabs. ``first_visit``:
    each tab in a fresh browser context (empty HTTP cache), else all in one context (a return
    visitor whose browser cached Voilà's 5 MB of JavaScript)."""
    times = []
    shared = None if first_visit else browser.new_context(viewport={"width": 1000, "height": 900})
    for _ in range(loads):
        if wait_for_pool and pool:
            wait_until_warm(server, pool)
        context = shared or browser.new_context(viewport={"width": 1000, "height": 900})
        page = context.new_page()
        dashboard = DashboardPage(page, server.url, route_remote=False)
        start = time.perf_counter()
        dashboard.open()
        times.append(time.perf_counter() - start)
        page.close(run_before_unload=True)  # the tab closes: Voilà is told to stop its kernel
        if context is not shared:
            context.close()
    if shared is not None:
        shared.close()
    return times


def report(name: str, times: list[float]) -> None:
    values = np.array(times)
    p50, p95 = np.percentile(values, [50, 95])
    print(f"  {name:<24} {len(values)} loads: p50 {p50:.2f} s   p95 {p95:.2f} s   max {values.max():.2f} s"
          f"   (load average {os.getloadavg()[0]:.1f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--pool", type=int, default=None, help="warm kernels (default: the machine's default)")
    parser.add_argument("--pattern", choices=["spaced", "burst", "both"], default="both")
    parser.add_argument("--visits", choices=["first", "return", "both"], default="both",
                        help="spaced loads as first visits (empty cache), return visits, or both")
    args = parser.parse_args()

    load_model(model_path())  # fail early, with the loader's message, if there is none
    pool = settings()["pool_size"] if args.pool is None else args.pool
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="doodle-bench-") as workdir:
        env = {"DOODLE_FEEDBACK_DB": str(Path(workdir) / "feedback.sqlite"), POOL_ENV: str(pool)}
        with VoilaServer(Path(workdir) / "voila.log", env=env) as server, sync_playwright() as playwright:
            warm = wait_until_warm(server, pool) if pool else 0.0
            kernels, voila_rss = pool_memory(server)
            print(f"pool of {pool} kernel(s) warm {warm:.1f} s after Voilà listened;"
                  f" load average {os.getloadavg()[0]:.2f}")
            if kernels:
                print(f"  resident memory: kernels {mib(sum(kernels))} in all"
                      f" ({', '.join(mib(k) for k in kernels)}), Voilà itself {mib(voila_rss)}")
            browser = launch_chromium(playwright)
            print("Navigation -> pad ready (pad visible, the kernel's first answer on the page); aim: p95 <= 1.5 s")
            if args.pattern in ("spaced", "both"):
                if args.visits in ("first", "both"):
                    report("spaced, first visits", timed_loads(server, browser, args.loads, pool,
                                                               wait_for_pool=True, first_visit=True))
                if args.visits in ("return", "both"):
                    report("spaced, return visits", timed_loads(server, browser, args.loads, pool,
                                                                wait_for_pool=True, first_visit=False))
            if args.pattern in ("burst", "both"):
                if pool:
                    wait_until_warm(server, pool)
                report("burst, return visits", timed_loads(server, browser, args.loads, pool,
                                                           wait_for_pool=False, first_visit=False))
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
