"""Kernels behind the drawing app: the warm pool, the cap with its busy page, reclaiming the
kernels of closed tabs (Voilà in a subprocess, pages in headless Chromium, kernels counted as
processes), and the settings that size them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from traitlets.config import Config

from doodle.app import dashboard_server
from doodle.app.dashboard_server import (
    BUSY_MESSAGE,
    IOPUB_TIMEOUT_S,
    JUPYTER_DATA,
    KERNEL_MEMORY_BYTES,
    MAX_KERNELS_ENV,
    PAGE_URL_VARIABLE,
    POOL_BUDGET_BYTES,
    POOL_ENV,
    POOL_MEMORY_ENV,
    REFILL_DELAY_S,
    REFILL_ENV,
    TEMPLATE,
    WARM_UP_ENV,
    WARM_UP_TIMEOUT_S,
    DashboardKernelManager,
    configure,
    default_max_kernels,
    default_pool_size,
    low_water,
    pool_size_for,
    settings,
)
from support.browser import DashboardPage, chromium_or_skip, launch_chromium, trained_model_or_skip
from support.voila import VoilaServer

POOL = 2
CAP = 4
CLOSED_TAB_S = 3


def test_defaults_are_sized_to_the_machine():
    gib = 2**30
    # The warm pool is what its memory budget holds: 3 GiB (a class of 20), at most a sixth of
    # the memory.
    assert default_pool_size(64 * gib) == POOL_BUDGET_BYTES // KERNEL_MEMORY_BYTES == 20
    assert default_pool_size(24 * gib) == 20
    assert default_pool_size(8 * gib) == 8 * gib // 6 // KERNEL_MEMORY_BYTES == 9
    assert default_pool_size(1 * gib) == 1  # a budget under one kernel still keeps one warm
    # Refills stop waiting for a lull when a tenth of the pool is left warm, the last kernel at least.
    assert [low_water(size) for size in (1, 2, 13, 20, 32)] == [1, 1, 1, 2, 3]
    assert pool_size_for(3 * KERNEL_MEMORY_BYTES - 1) == 2
    assert default_max_kernels(2, memory_bytes=1 * gib) == 4  # never below pool + 2
    assert default_max_kernels(2, memory_bytes=8 * gib) == 8 * gib // 4 // KERNEL_MEMORY_BYTES
    assert default_max_kernels(2, memory_bytes=512 * gib) == 32
    chosen = settings({})
    assert chosen["max_kernels"] >= chosen["pool_size"] + 2


def test_settings_come_from_the_environment_and_bad_ones_are_named():
    chosen = settings(
        {POOL_ENV: "3", MAX_KERNELS_ENV: "5", "DOODLE_DASHBOARD_CLOSED_TAB_S": "7", REFILL_ENV: "0"}
    )
    assert (chosen["pool_size"], chosen["max_kernels"], chosen["closed_tab_s"], chosen["idle_s"]) == (
        3,
        5,
        7,
        600,
    )
    assert chosen["refill_s"] == 0 and settings({})["refill_s"] == REFILL_DELAY_S
    assert settings({WARM_UP_ENV: "30"})["warm_up_s"] == 30 and settings({})["warm_up_s"] == WARM_UP_TIMEOUT_S
    # The budget sizes the pool; an explicit pool size wins over it.
    budget = {POOL_MEMORY_ENV: str(5 * KERNEL_MEMORY_BYTES // 2**20)}
    assert settings(budget)["pool_size"] == 5 and settings(budget)["pool_budget_mib"] == 750
    assert settings({**budget, POOL_ENV: "0"})["pool_size"] == 0
    for env, words in [
        ({POOL_MEMORY_ENV: "0"}, f"{POOL_MEMORY_ENV} must be at least 1"),
        ({POOL_ENV: "many"}, f"{POOL_ENV} must be a whole number"),
        ({MAX_KERNELS_ENV: "0"}, f"{MAX_KERNELS_ENV} must be at least 1"),
        ({REFILL_ENV: "-1"}, f"{REFILL_ENV} must be at least 0"),
        ({WARM_UP_ENV: "0"}, f"{WARM_UP_ENV} must be at least 1"),
        ({POOL_ENV: "4", MAX_KERNELS_ENV: "3"}, f"{MAX_KERNELS_ENV} (3) must be at least {POOL_ENV} (4)"),
    ]:
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
            settings(env)


def test_voila_config_preheats_caps_and_still_culls_idle_kernels(monkeypatch):
    monkeypatch.delenv("JUPYTER_PATH", raising=False)  # configure sets it for Voilà's process
    c = Config()
    configure(c, {POOL_ENV: "2", MAX_KERNELS_ENV: "6"})
    assert c.VoilaConfiguration.preheat_kernel is True and c.VoilaConfiguration.default_pool_size == 2
    assert (
        c.VoilaConfiguration.multi_kernel_manager_class
        == "doodle.app.dashboard_server.DashboardKernelManager"
    )
    manager = c.DashboardKernelManager
    assert manager.max_kernels == 6 and manager.closed_tab_timeout == 20
    # Open pages nobody touches are still reclaimed after the idle timeout.
    assert manager.cull_idle_timeout == 600 and manager.cull_connected is True
    assert 0 < manager.cull_interval <= 5
    # A used warm kernel's replacement waits for a lull in the pages; Voilà's own delay, which a
    # page taking the replacement would wait out too, is off.
    assert manager.refill_delay == REFILL_DELAY_S > 1 and manager.fill_delay == 0
    # A pool kernel that has not warmed up in this long is replaced, leaving room for slow warm-ups.
    assert manager.warm_up_timeout == WARM_UP_TIMEOUT_S >= IOPUB_TIMEOUT_S
    # nbclient waits for a cell's output long enough that a busy machine does not lose the widget.
    assert c.VoilaExecutor.iopub_timeout == IOPUB_TIMEOUT_S >= 60
    # Pages from the warm pool get the _xsrf cookie that the unload beacon needs.
    assert c.Voila.identity_provider_class == "doodle.app.dashboard_server.DashboardIdentityProvider"
    assert "jupyterlab_pygments" in c.VoilaConfiguration.extension_denylist
    configure(c, {POOL_ENV: "0"})
    assert c.VoilaConfiguration.preheat_kernel is False


def test_voila_finds_the_page_template_and_its_built_script(monkeypatch, tmp_path):
    from voila.paths import collect_static_paths, collect_template_paths

    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    c = Config()
    configure(c, {})
    configure(c, {})  # a second time does not add the path again
    assert c.VoilaConfiguration.template == TEMPLATE
    assert os.environ["JUPYTER_PATH"].split(os.pathsep) == [str(JUPYTER_DATA), str(tmp_path)]
    # Voilà's own lookup: our template first, then the lab template it extends.
    templates = [Path(p) for p in collect_template_paths(["voila", "nbconvert"], TEMPLATE, prune=True)]
    assert templates[0] == JUPYTER_DATA / "voila" / "templates" / TEMPLATE
    assert (templates[0] / "index.html.j2").is_file()
    assert any(p.parts[-3:] == ("voila", "templates", "lab") for p in templates)
    statics = [Path(p) for p in collect_static_paths(["voila", "nbconvert"], TEMPLATE)]
    assert (statics[0] / "doodle.js").is_file() and (statics[0] / "doodle.css").is_file()


def test_an_unbuilt_page_script_is_named_with_the_command_that_builds_it(monkeypatch, tmp_path):
    monkeypatch.setattr(dashboard_server, "TEMPLATE_STATIC", tmp_path)
    environ = {"JUPYTER_PATH": "kept"}
    with pytest.raises(FileNotFoundError, match=r"doodle.js, doodle.css missing .*make frontend"):
        dashboard_server.use_page_template(environ)
    assert environ == {"JUPYTER_PATH": "kept"}


class FakeRun:
    """What Voilà's pool task returns once its kernel answers: the notebook's run still going
    (its "task") until the test says the kernel is warm."""

    def __init__(self) -> None:
        self.done_event = asyncio.Event()
        self.task = asyncio.create_task(self.done_event.wait())


def test_refills_wait_for_a_lull_in_the_pages_and_a_taken_one_starts_at_once():
    """`DashboardKernelManager.pace_refill` in the pool's own tasks, as Voilà runs them: each task
    asks it when to start, then starts its kernel (returns), and the notebook's run goes on in a
    task of its own until the test says the kernel is warm."""

    async def scenario() -> None:
        manager = DashboardKernelManager(refill_delay=2.0, warming_at_once=1)
        manager._pools = {"app.ipynb": []}
        pool = manager._pools["app.ipynb"]
        went_ahead: dict[int, str] = {}
        runs: dict[int, FakeRun] = {}

        async def pool_kernel(n: int, *, for_page: bool = False) -> dict:
            went_ahead[n] = await manager.pace_refill(for_page=for_page)
            runs[n] = FakeRun()
            return {"task": runs[n].task, "kernel_id": f"k{n}"}

        async def settle(seconds: float = 0.25) -> None:
            await asyncio.sleep(seconds)

        async def warm(n: int) -> None:
            runs[n].done_event.set()
            await settle()

        def take_warm() -> None:
            pool.remove(next(task for task in pool if manager.is_warm(task)))

        size = 10  # a tenth of it is one kernel
        tasks = {n: asyncio.create_task(pool_kernel(n)) for n in range(size)}
        pool.extend(tasks[n] for n in range(size))
        await settle()
        # Starting up, the pool is empty: one kernel warms at a time, the others queue, and a
        # kernel warms until its notebook has run, not only until it answers.
        assert went_ahead == {0: "low"} and tasks[0].done() and manager.warming_count() == 1
        await warm(0)
        assert went_ahead == {0: "low", 1: "low"}
        for n in range(1, size):
            await warm(n)
        assert len(went_ahead) == size and sum(1 for task in pool if manager.is_warm(task)) == size
        # A class opens the app: each page takes a warm kernel, Voilà queues its replacement, and
        # no replacement starts while pages keep coming and more than a tenth of the pool is warm.
        refill = size
        for _ in range(size - 2):
            take_warm()
            tasks[refill] = asyncio.create_task(pool_kernel(refill, for_page=True))
            pool.append(tasks[refill])
            refill += 1
            await settle(0.1)
        assert not any(n in went_ahead for n in range(size, refill))
        # Down to the last warm kernel: the first replacement starts at once, one at a time.
        take_warm()
        tasks[refill] = asyncio.create_task(pool_kernel(refill, for_page=True))
        pool.append(tasks[refill])
        refill += 1
        await settle()
        assert [went_ahead.get(n) for n in range(size, refill)].count("low") == 1
        # A page takes a kernel still waiting to start: it starts at once, ahead of the queue.
        waiting = [n for n in range(size, refill) if n not in went_ahead]
        pool.remove(tasks[waiting[0]])
        await settle()
        assert went_ahead[waiting[0]] == "taken"
        # The pages stop: after the lull the rest warm up, one at a time.
        for n in [n for n in range(size, refill) if went_ahead.get(n) == "low"]:
            await warm(n)
        await settle(2.3)
        lulled = [n for n in range(size, refill) if went_ahead.get(n) == "lull"]
        assert len(lulled) == 1 and manager.warming_count() == 1
        # A page's own kernel (no pool task) starts at once, and counts as a page coming.
        before = manager._last_page
        assert await manager.pace_refill() == "page" and manager._last_page > before
        pool.clear()
        for run in runs.values():
            run.done_event.set()
        await asyncio.gather(*tasks.values())

    asyncio.run(scenario())


def test_a_pool_kernel_that_does_not_warm_up_is_shut_down_and_the_next_refill_starts():
    """A notebook that hangs while a pool kernel warms up (its run never ends) would hold the only
    warming slot: past ``warm_up_timeout`` its run is stopped and its kernel shut down, which takes
    it out of the pool, and the refill queued behind it starts. A kernel that warms up in time, or
    one a page took, is never given up."""

    async def scenario() -> None:
        manager = DashboardKernelManager(refill_delay=0.0, warming_at_once=1, warm_up_timeout=1.0)
        manager._pools = {"app.ipynb": []}
        pool = manager._pools["app.ipynb"]
        went_ahead: dict[int, str] = {}
        runs: dict[int, FakeRun] = {}
        shut_down: list[tuple[str, dict]] = []

        async def shutdown_kernel(kernel_id: str, *args, **kwargs) -> None:
            # What Voilà's own shutdown does to the pool before Jupyter stops the kernel.
            shut_down.append((kernel_id, kwargs))
            pool[:] = [task for task in pool if not (task.done() and task.result()["kernel_id"] == kernel_id)]

        manager.shutdown_kernel = shutdown_kernel

        async def pool_kernel(n: int) -> dict:
            went_ahead[n] = await manager.pace_refill()
            runs[n] = FakeRun()
            return {"task": runs[n].task, "kernel_id": f"k{n}"}

        async def until(condition, timeout_s: float = 10.0) -> None:
            deadline = time.monotonic() + timeout_s
            while not condition():
                assert time.monotonic() < deadline, "waited too long"
                await asyncio.sleep(0.02)

        tasks = {n: asyncio.create_task(pool_kernel(n)) for n in range(3)}
        pool.extend(tasks.values())
        await asyncio.sleep(0.3)
        # k0 warms up and hangs; k1 and k2 wait behind it for the one warming slot.
        assert went_ahead == {0: "low"} and not shut_down
        await until(lambda: 1 in went_ahead)
        assert shut_down == [("k0", {"now": True})]
        assert tasks[0] not in pool and went_ahead[1] == "low"
        await asyncio.sleep(0)
        assert runs[0].task.cancelled()
        runs[1].done_event.set()  # k1 warms up in time
        pool.remove(tasks[2])  # a page takes k2 before it starts: the page's, no longer the pool's
        await until(lambda: 2 in went_ahead)
        assert went_ahead[2] == "taken"
        await asyncio.sleep(1.3)
        assert shut_down == [("k0", {"now": True})] and manager.warming_count() == 0
        for run in runs.values():
            run.done_event.set()
        await asyncio.gather(*tasks.values())

    asyncio.run(scenario())


def test_a_refill_refused_at_the_cap_leaves_the_pool_so_kernels_can_still_be_shut_down(tmp_path):
    """Voilà's pre-heating manager (its subclass of ours) reads the result of every task in the
    pool whenever it shuts a kernel down, so a refused refill kept in the pool made every shutdown
    fail with the refusal, the unload beacon of a page closed after the cap among them. A refill
    refused at the cap must leave the pool as it fails."""
    from tornado.web import HTTPError
    from traitlets import Unicode
    from traitlets.config import Configurable
    from voila.voila_kernel_manager import voila_kernel_manager_factory

    class VoilaApp(Configurable):  # what the manager reads of Voilà's application when made
        root_dir = Unicode(str(tmp_path))  # no notebook in it: the manager starts no pool itself
        notebook_path = None

    manager_class = voila_kernel_manager_factory(DashboardKernelManager, True, 2)

    async def refused_refill(manager, pool: list) -> asyncio.Task:
        refill = asyncio.create_task(manager.start_kernel(kernel_name="python3"))
        pool.append(refill)
        with pytest.raises(HTTPError) as refused:
            await refill
        assert refused.value.status_code == 503 and refused.value.reason == BUSY_MESSAGE
        await asyncio.sleep(0)  # the task's done callbacks
        return refill

    async def scenario() -> None:
        manager = manager_class(parent=VoilaApp(), max_kernels=1, refill_delay=0.0)
        manager._starting.add("a-page-kernel")  # one live kernel: the cap
        manager.fill_if_needed = lambda *args, **kwargs: None  # no real refills here
        pool = manager._pools.setdefault("app.ipynb", [])
        refill = await refused_refill(manager, pool)
        assert refill not in pool
        # Voilà's shutdown passes over the pool and reaches Jupyter's (which knows no such kernel).
        with pytest.raises(HTTPError) as unknown:
            await manager.shutdown_kernel("a-page-kernel")
        assert unknown.value.status_code == 404
        # Why: a failed task left in the pool makes Voilà's shutdown fail with its error.
        pool.append(refill)
        with pytest.raises(HTTPError) as blocked:
            await manager.shutdown_kernel("a-page-kernel")
        assert blocked.value.status_code == 503

    asyncio.run(scenario())


def test_a_replacement_voila_starts_for_a_page_counts_as_a_page_coming():
    """Voilà gives the replacement of a warm kernel a page took the page's URL: `start_kernel`
    tells `pace_refill` so, and the lull starts again."""
    from voila.utils import ENV_VARIABLE

    assert PAGE_URL_VARIABLE == ENV_VARIABLE.VOILA_REQUEST_URL


def test_a_process_a_kernel_starts_is_not_counted_as_a_kernel(tmp_path):
    """Until it runs its own program, a kernel's child shows the kernel's command line (a kernel
    runs ``uname -p`` as it starts): the tests' count of kernels must not take it for one more."""
    forked = tmp_path / "forked"
    kernel_code = "import os, sys, time\nif os.fork():\n    open(sys.argv[1], 'w').close()\ntime.sleep(60)\n"
    server_code = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', {kernel_code!r}, {str(forked)!r}, 'ipykernel_launcher'])\n"
        "time.sleep(60)\n"
    )
    server = VoilaServer(tmp_path / "voila.log")  # its process is a stand-in, not Voilà
    server.process = subprocess.Popen([sys.executable, "-c", server_code], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not forked.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        looking_like_kernels = [
            child
            for child in psutil.Process(server.process.pid).children(recursive=True)
            if "ipykernel_launcher" in child.cmdline()
        ]
        assert len(looking_like_kernels) == 2  # the kernel and the child it forked
        kernels = server.kernel_processes()
        assert [kernel.ppid() for kernel in kernels] == [server.process.pid]
        assert server.kernel_count() == 1
    finally:
        server.stop()


@pytest.fixture(scope="module")
def capped_voila(tmp_path_factory):
    trained_model_or_skip()
    chromium_or_skip()
    workdir = tmp_path_factory.mktemp("voila-capped")
    env = {
        "DOODLE_FEEDBACK_DB": str(workdir / "feedback.sqlite"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
        # The pool's memory budget, not its size: the server's pool is what the budget holds.
        POOL_MEMORY_ENV: str(POOL * KERNEL_MEMORY_BYTES // 2**20),
        MAX_KERNELS_ENV: str(CAP),
        "DOODLE_DASHBOARD_CLOSED_TAB_S": str(CLOSED_TAB_S),
    }
    with VoilaServer(workdir / "voila.log", env=env) as server:
        server.wait_for_kernel_count(POOL, timeout_s=180)  # the pool warms up on start
        yield server


class KernelSampler:
    """Counts the server's kernels every 0.2 s in a thread, keeping the largest count seen."""

    def __init__(self, server: VoilaServer):
        self.server = server
        self.largest = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.largest = max(self.largest, self.server.kernel_count())

    def __enter__(self) -> KernelSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.slow
@pytest.mark.pipeline
def test_cap_plus_five_pages_get_a_busy_page_and_closed_tabs_give_kernels_back(capped_voila):
    from playwright.sync_api import sync_playwright

    served, busy = [], []
    with KernelSampler(capped_voila) as sampler, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        pages = []
        for _ in range(CAP + 5):
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            pages.append(page)
            dashboard = DashboardPage(page, capped_voila.url)
            response = page.goto(capped_voila.url, timeout=120_000)
            if response.status == 200:
                dashboard.wait_until_ready()
                served.append(page)
            else:
                busy.append((response.status, page.content()))
            assert capped_voila.kernel_count() <= CAP
        assert len(served) == CAP, (len(served), [status for status, _ in busy])
        assert len(busy) == 5
        for status, content in busy:
            assert status == 503 and BUSY_MESSAGE in content
        # A served page still works while others are turned away.
        assert DashboardPage(served[0], capped_voila.url).predict().state == "blank"
        # Tabs go away without saying so (no unload beacon), as when a phone drops a tab.
        for page in pages:
            page.close(run_before_unload=False)
        waited = capped_voila.wait_for_kernel_count(POOL, timeout_s=120)
        browser.close()
    assert sampler.largest <= CAP, f"{sampler.largest} kernels at once, over the cap of {CAP}"
    assert waited < 120
    # The pool is warm again: the next visitor gets a page.
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page()
        assert page.goto(capped_voila.url, timeout=120_000).status == 200
        DashboardPage(page, capped_voila.url).wait_until_ready()
        browser.close()


@pytest.mark.slow
@pytest.mark.pipeline
def test_a_tab_closed_normally_gives_its_kernel_back_at_once(capped_voila):
    """The page's unload beacon (carrying the _xsrf cookie) stops its kernel; it is not left for
    the closed-tab reclaim."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context()
        page = context.new_page()
        kernels = []
        page.on(
            "websocket",
            lambda ws: (
                kernels.append(ws.url.split("/api/kernels/")[1].split("/")[0])
                if "/api/kernels/" in ws.url
                else None
            ),
        )
        DashboardPage(page, capped_voila.url).open()
        assert "_xsrf" in {cookie["name"] for cookie in context.cookies()}
        assert len(kernels) == 1
        page.close(run_before_unload=True)
        shutdown = f"Kernel shutdown: {kernels[0]}"
        deadline = time.monotonic() + 60
        while shutdown not in capped_voila.log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        browser.close()
    log = capped_voila.log_path.read_text()
    assert shutdown in log
    assert f"Reclaiming kernel {kernels[0]}" not in log, "the kernel waited for the closed-tab reclaim"
    assert "403 POST /voila/api/shutdown" not in log
    capped_voila.wait_for_kernel_count(POOL, timeout_s=120)
