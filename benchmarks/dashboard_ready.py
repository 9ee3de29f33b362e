"""Dashboard start-up: from navigation to a ready pad, in headless Chromium, and the memory of
the warm kernel pool.

Voilà serves the dashboard as `make run` does (conf/voila/voila.py: pre-heated kernels, the
default pool for this machine unless --pool is given). Once the pool is warm, each of --loads
page loads opens a new tab, times navigation -> pad visible and the kernel's first answer on the
page (the result panel, the bars and the "why" views) by the page's own clock (milliseconds since
navigation started), then closes the tab as a visitor does (Voilà is told, and stops its kernel).
Two patterns: "spaced" waits for the pool to be warm and quiet again between loads (visitors
several seconds apart), "burst" loads back to back (a class opening the app: a pool smaller than
the burst drains, and later loads wait for kernels warming behind them). A load that is not
ready within --timeout seconds counts as that many seconds and is reported; the run always ends.
Prints p50/p95/max per pattern, where a load's time goes (the page script's marks, `PHASES`:
median and p95 milliseconds of each phase), and the resident memory of the warm pool.

    .venv/bin/python benchmarks/dashboard_ready.py [--loads 20] [--pool N] [--pattern spaced|burst|both]
        [--visits first|return|both] [--timeout 30]

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

from doodle.app.dashboard_server import POOL_ENV, settings  # noqa: E402
from doodle.model.model_io import load_model  # noqa: E402
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


def cpu_by_part(server: VoilaServer) -> dict[str, dict[int, float]]:
    """CPU seconds used so far by each process of the three parts a page load runs on: Chromium
    (this script's descendants), Voilà's server process, and its kernels; keyed by pid."""
    import psutil

    def seconds(process) -> float:
        times = process.cpu_times()
        return times.user + times.system

    parts: dict[str, dict[int, float]] = {"browser": {}, "voila": {}, "kernels": {}}
    for process in psutil.Process().children(recursive=True):
        try:
            if "chrom" in process.name().lower():
                parts["browser"][process.pid] = seconds(process)
        except psutil.Error:
            pass
    try:
        parts["voila"][server.process.pid] = seconds(psutil.Process(server.process.pid))
        for kernel in server.kernel_processes():
            parts["kernels"][kernel.pid] = seconds(kernel)
    except psutil.Error:
        pass
    return parts


def cpu_used(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
    """CPU seconds each part used between two `cpu_by_part` readings (a process started
    meanwhile counts from zero; one that ended meanwhile is not counted)."""
    return {part: sum(t - before[part].get(pid, 0.0) for pid, t in after[part].items()) for part in after}


def wait_until_warm(server: VoilaServer, pool: int, timeout_s: float = 90.0) -> bool:
    """Wait until exactly ``pool`` kernels run and have gone quiet (pre-heating runs the
    notebook, a few seconds of CPU); False if that did not happen within ``timeout_s``."""
    import psutil

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        kernels = server.kernel_processes()
        if len(kernels) != pool:
            time.sleep(0.25)
            continue
        try:
            before = sum(k.cpu_times().user + k.cpu_times().system for k in kernels)
            time.sleep(0.5)
            after = sum(k.cpu_times().user + k.cpu_times().system for k in kernels)
        except psutil.Error:  # a kernel stopped meanwhile
            continue
        if after - before < 0.05 and len(server.kernel_processes()) == pool:
            return True
    return False


# A load's phases by the page's own clock: Voilà's answer (the page's HTML, the kernel handed over),
# the page script fetched and parsed, the script's code run, the kernel connection, the widgets'
# state, the widgets' views, and the kernel's first answer painted (the pad, the idle result).
# The marks come from dashboard-frontend/src/index.js.
PHASES = ("html", "script parsed", "script run", "kernel", "widget state", "views", "first answer")
_PHASES_JS = """
(ready) => {
  const mark = (name) => {
    const found = performance.getEntriesByName('doodle:' + name, 'mark');
    return found.length ? found[0].startTime : null;
  };
  const times = [0, performance.getEntriesByType('navigation')[0].responseEnd, mark('script'), mark('start'),
    mark('connected'), mark('state'), mark('shown'), ready];
  if (times.includes(null)) return null;  // a page script without the marks
  return times.slice(1).map((time, i) => time - times[i]);
}
"""


def timed_loads(
    server: VoilaServer,
    browser,
    loads: int,
    pool: int,
    *,
    wait_for_pool: bool,
    first_visit: bool,
    timeout_s: float,
) -> tuple[list[float], int, list[dict[str, float]], list[list[float]]]:
    """Seconds from navigation to a ready pad for each of ``loads`` new tabs (``timeout_s`` for a
    load that was not ready by then), how many timed out, the CPU seconds each part used during
    each load (`cpu_used`), and each ready load's milliseconds in each of `PHASES`.
    ``first_visit``: each tab in a fresh browser context (empty HTTP cache), else all in one
    context (a return visitor whose browser cached the page's script)."""
    from playwright.sync_api import Error as PlaywrightError

    times, timeouts, cpu, phases = [], 0, [], []
    shared = None if first_visit else browser.new_context(viewport={"width": 1000, "height": 900})
    for _ in range(loads):
        if wait_for_pool and pool and not wait_until_warm(server, pool):
            print(f"    (the pool of {pool} was not warm and quiet within 90 s; loading anyway)")
        context = shared or browser.new_context(viewport={"width": 1000, "height": 900})
        page = context.new_page()
        dashboard = DashboardPage(page, server.url, route_remote=False)
        before = cpu_by_part(server)
        start = time.monotonic()
        try:
            page.goto(server.url, timeout=timeout_s * 1000, wait_until="commit")
            left_ms = max(1.0, (timeout_s - (time.monotonic() - start)) * 1000)
            ready_ms = dashboard.wait_until_ready(timeout_ms=left_ms)
            times.append(ready_ms / 1000)
            cpu.append(cpu_used(before, cpu_by_part(server)))
            split = page.evaluate(_PHASES_JS, ready_ms)
            if split is not None:
                phases.append(split)
        except PlaywrightError as error:  # not ready in time, or the page failed
            timeouts += 1
            times.append(timeout_s)
            print(
                f"    load {len(times)} not ready after {time.monotonic() - start:.1f} s:"
                f" {str(error).splitlines()[0][:120]}"
            )
        page.close(run_before_unload=True)  # the tab closes: Voilà is told to stop its kernel
        if context is not shared:
            context.close()
    if shared is not None:
        shared.close()
    return times, timeouts, cpu, phases


def report(name: str, result: tuple[list[float], int, list[dict[str, float]], list[list[float]]]) -> None:
    """p50/p95/max of the load times, the median CPU seconds per load of each part (the
    wall-clock times depend on what else the machine runs, the CPU seconds much less), and the
    median (and 95th percentile) milliseconds of each phase of a load."""
    times, timeouts, cpu, phases = result
    values = np.array(times)
    p50, p95 = np.percentile(values, [50, 95])
    late = f", {timeouts} not ready in time (counted at the timeout)" if timeouts else ""
    print(
        f"  {name:<24} {len(values)} loads: p50 {p50:.2f} s   p95 {p95:.2f} s   max {values.max():.2f} s"
        f"   (load average {os.getloadavg()[0]:.1f}){late}",
        flush=True,
    )
    if cpu:
        median = {part: float(np.median([load[part] for load in cpu])) for part in cpu[0]}
        print(
            f"  {'':<24} CPU per load (median): Chromium {median['browser']:.2f} s, Voilà {median['voila']:.2f} s,"
            f" kernels {median['kernels']:.2f} s",
            flush=True,
        )
    if phases:
        medians, p95s = np.percentile(np.array(phases), [50, 95], axis=0)
        print(
            f"  {'':<24} where a load's time goes, median (p95) ms: "
            + ", ".join(f"{phase} {ms:.0f} ({high:.0f})" for phase, ms, high in zip(PHASES, medians, p95s)),
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument(
        "--pool", type=int, default=None, help="warm kernels (default: the machine's default)"
    )
    parser.add_argument("--pattern", choices=["spaced", "burst", "both"], default="both")
    parser.add_argument(
        "--visits",
        choices=["first", "return", "both"],
        default="both",
        help="spaced loads as first visits (empty cache), return visits, or both",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds a load may take before it counts as failed"
    )
    args = parser.parse_args()

    load_model(model_path())  # fail early, with the loader's message, if there is none
    pool = settings()["pool_size"] if args.pool is None else args.pool
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="doodle-bench-") as workdir:
        env = {"DOODLE_FEEDBACK_DB": str(Path(workdir) / "feedback.sqlite"), POOL_ENV: str(pool)}
        with VoilaServer(Path(workdir) / "voila.log", env=env) as server, sync_playwright() as playwright:
            started = time.monotonic()
            if pool and not wait_until_warm(server, pool, timeout_s=180):
                print(f"the pool of {pool} was not warm within 180 s; see {Path(workdir) / 'voila.log'}")
                return 1
            warm = time.monotonic() - started
            kernels, voila_rss = pool_memory(server)
            print(
                f"pool of {pool} kernel(s) warm {warm:.1f} s after Voilà listened;"
                f" load average {os.getloadavg()[0]:.2f}"
            )
            if kernels:
                print(
                    f"  resident memory: kernels {mib(sum(kernels))} in all"
                    f" ({', '.join(mib(k) for k in kernels)}), Voilà itself {mib(voila_rss)}"
                )
            browser = launch_chromium(playwright)
            print(
                "Navigation -> pad ready (pad visible, the kernel's first answer on the page); aim: p95 <= 1.5 s"
            )
            if args.pattern in ("spaced", "both"):
                if args.visits in ("first", "both"):
                    report(
                        "spaced, first visits",
                        timed_loads(
                            server,
                            browser,
                            args.loads,
                            pool,
                            wait_for_pool=True,
                            first_visit=True,
                            timeout_s=args.timeout,
                        ),
                    )
                if args.visits in ("return", "both"):
                    report(
                        "spaced, return visits",
                        timed_loads(
                            server,
                            browser,
                            args.loads,
                            pool,
                            wait_for_pool=True,
                            first_visit=False,
                            timeout_s=args.timeout,
                        ),
                    )
            if args.pattern in ("burst", "both"):
                if pool:
                    wait_until_warm(server, pool)
                report(
                    "burst, return visits",
                    timed_loads(
                        server,
                        browser,
                        args.loads,
                        pool,
                        wait_for_pool=False,
                        first_visit=False,
                        timeout_s=args.timeout,
                    ),
                )
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
