"""How Voilà serves the drawing app: a pool of pre-heated kernels (each has already run the
notebook, so a page is ready as soon as it loads), a cap on live kernels with a "busy" page past
it, and prompt reclaiming of kernels whose page has gone.

`conf/voila/voila.py` calls `configure`; Voilà then runs `DashboardKernelManager` (wrapped in
its own pre-heating manager). Settings, read when Voilà starts:

- ``DOODLE_DASHBOARD_POOL_MB``: the memory the warm pool may hold, in MiB (default
  `default_pool_budget_bytes()`: 3 GiB, at most a sixth of the machine's memory); the pool is as
  many kernels as it holds at `KERNEL_MEMORY_BYTES` a kernel (`pool_size_for`).
- ``DOODLE_DASHBOARD_POOL``: kernels kept warm, in place of the budget's count (0: no pool).
- ``DOODLE_DASHBOARD_MAX_KERNELS``: live kernels at most, warm ones included (default
  `default_max_kernels()`: what a quarter of the machine's memory holds at 150 MB a kernel,
  between pool + 2 and 32).
- ``DOODLE_DASHBOARD_CLOSED_TAB_S``: seconds a kernel is kept after its page disconnects
  without saying goodbye (default 20), ``DOODLE_DASHBOARD_IDLE_S``: seconds an open but
  untouched page keeps its kernel (default 600).
- ``DOODLE_DASHBOARD_REFILL_S``: seconds without a new page before a replacement for a taken warm
  kernel starts (default `REFILL_DELAY_S`): starting a kernel and running the notebook costs a core
  for a few seconds, which the pages loading need more on a small machine.
- ``DOODLE_DASHBOARD_WARM_UP_S``: seconds a pool kernel may take to start and run the notebook
  before it is shut down and replaced (default `WARM_UP_TIMEOUT_S`).

Refills wait for a lull (`DashboardKernelManager.pace_refill`): a replacement starts once no page
has come for the refill delay, or at once when the pool is down to its last warm kernels
(`low_water`), so that a burst of pages (a class opening the app) is served from the pool
without kernels warming up beside the pages on the same cores. At most one kernel per CPU core but
one warms up at a time, and a kernel warms up until it has run the notebook, not only until its
process answers (a core is left to the pages loading; ten started together would all be ready
late). A page that takes a kernel still waiting to start has it started at once, ahead of the
others. A pool kernel still warming up `WARM_UP_TIMEOUT_S` after it started is shut down, and
another takes its place.

Voilà runs the notebook in a pool kernel through nbclient, which waits `IOPUB_TIMEOUT_S` for a
cell's output after the cell's reply; its own 4 s were too short on a busy machine (the pool
warming up while other work ran): the widget's output was dropped, and the page that later took
that kernel never showed the app.

The page is Voilà's, drawn with the template ``doodle`` (share/jupyter/voila/templates/doodle/):
Voilà's lab template with one small script (built from dashboard-frontend/ by ``make``) in place of
the JupyterLab front end, which took most of a page load's time. `configure` puts the
repository's share/jupyter on the Jupyter path so Voilà finds it.

A page closed normally tells Voilà at once (its ``beforeunload`` beacon to
``/voila/api/shutdown``), so its kernel stops within a second. The beacon carries the ``_xsrf``
cookie, which Voilà sets while rendering a page but not when the page comes pre-rendered from the
warm pool: `DashboardIdentityProvider` sets it on every page response.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Mapping

from jupyter_core.utils import ensure_async
from jupyter_server.auth.identity import PasswordIdentityProvider
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.web import HTTPError
from traitlets import Float, Integer, default

from doodle.paths import ROOT

POOL_ENV = "DOODLE_DASHBOARD_POOL"
POOL_MEMORY_ENV = "DOODLE_DASHBOARD_POOL_MB"
MAX_KERNELS_ENV = "DOODLE_DASHBOARD_MAX_KERNELS"
CLOSED_TAB_ENV = "DOODLE_DASHBOARD_CLOSED_TAB_S"
IDLE_ENV = "DOODLE_DASHBOARD_IDLE_S"
REFILL_ENV = "DOODLE_DASHBOARD_REFILL_S"
WARM_UP_ENV = "DOODLE_DASHBOARD_WARM_UP_S"
# The variable Voilà gives the replacement of a warm kernel a page has just taken (the page's URL).
PAGE_URL_VARIABLE = "VOILA_REQUEST_URL"

BUSY_MESSAGE = "The drawing app is busy: try again in a moment"
# A dashboard kernel measured 100-120 MB resident (101 MiB warm, 68 MiB of it its own: the rest are
# libraries its neighbours share), with margin for the memory a page's use adds.
KERNEL_MEMORY_BYTES = 150 * 2**20
CULL_INTERVAL_S = 5  # how often kernels are checked; closed tabs are reclaimed within this of their timeout
REFILL_DELAY_S = 5  # refills start 5 s after the last page came (a page is ready 1-3 s after it came)
POOL_BUDGET_BYTES = 3 * 2**30  # the default warm pool's memory: 20 kernels, a class opening the app at once
REFILL_CHECK_S = 0.1  # how often a waiting replacement looks at the pool again
# A pool kernel that has not run the notebook this long after it went ahead is shut down and
# replaced (a warm-up takes 3-10 s on two busy cores): a notebook that hangs while it warms up (a
# feedback store that does not answer, say) would otherwise hold its warming slot, and no other
# refill would start.
WARM_UP_TIMEOUT_S = 180
# Seconds nbclient waits for a cell's output once the kernel has replied (its default: 4); the
# output always follows unless the kernel died, which nbclient notices by itself.
IOPUB_TIMEOUT_S = 120
TEMPLATE = "doodle"
JUPYTER_DATA = ROOT / "share" / "jupyter"  # holds voila/templates/doodle
TEMPLATE_STATIC = JUPYTER_DATA / "voila" / "templates" / TEMPLATE / "static"
BUNDLE_FILES = ("doodle.js", "doodle.css")  # what `make frontend` builds into TEMPLATE_STATIC
# Lab extensions Voilà would load on every page that the drawing app does not use (code highlighting).
UNUSED_EXTENSIONS = ["jupyterlab_pygments"]


def default_pool_budget_bytes(memory_bytes: int | None = None) -> int:
    """The warm pool's default memory: `POOL_BUDGET_BYTES`, at most a sixth of the memory."""
    memory = total_memory_bytes() if memory_bytes is None else memory_bytes
    return min(POOL_BUDGET_BYTES, memory // 6)


def pool_size_for(budget_bytes: int) -> int:
    """Warm kernels a memory budget holds at `KERNEL_MEMORY_BYTES` a kernel (one at least: a
    budget under one kernel still keeps one warm; turn the pool off with ``DOODLE_DASHBOARD_POOL=0``)."""
    return max(1, budget_bytes // KERNEL_MEMORY_BYTES)


def default_pool_size(memory_bytes: int | None = None) -> int:
    """The warm pool the default budget holds on a machine with ``memory_bytes`` (this one's)."""
    return pool_size_for(default_pool_budget_bytes(memory_bytes))


def total_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


def low_water(pool_size: int) -> int:
    """Warm kernels left at which refills start without waiting for a lull: a tenth of the pool,
    at least one (the next page's kernel)."""
    return max(1, pool_size // 10)


def default_max_kernels(pool_size: int, memory_bytes: int | None = None) -> int:
    """As many kernels as a quarter of the memory holds, at least ``pool_size + 2`` (the warm
    pool and two more pages), at most 32."""
    memory = total_memory_bytes() if memory_bytes is None else memory_bytes
    return max(pool_size + 2, min(32, memory // 4 // KERNEL_MEMORY_BYTES))


def _int_setting(env: Mapping[str, str], name: str, default_value: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default_value
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def settings(env: Mapping[str, str] = os.environ) -> dict[str, int]:
    """The settings above from ``env``, with their defaults (``pool_size``: from the budget unless
    ``DOODLE_DASHBOARD_POOL`` is set); a bad value is a ValueError naming the variable."""
    budget_mib = _int_setting(env, POOL_MEMORY_ENV, default_pool_budget_bytes() // 2**20, 1)
    pool = _int_setting(env, POOL_ENV, pool_size_for(budget_mib * 2**20), 0)
    max_kernels = _int_setting(env, MAX_KERNELS_ENV, default_max_kernels(pool), 1)
    if max_kernels < pool:
        raise ValueError(f"{MAX_KERNELS_ENV} ({max_kernels}) must be at least {POOL_ENV} ({pool})")
    return {
        "pool_size": pool,
        "pool_budget_mib": budget_mib,
        "max_kernels": max_kernels,
        "closed_tab_s": _int_setting(env, CLOSED_TAB_ENV, 20, 1),
        "idle_s": _int_setting(env, IDLE_ENV, 600, 1),
        "refill_s": _int_setting(env, REFILL_ENV, REFILL_DELAY_S, 0),
        "warm_up_s": _int_setting(env, WARM_UP_ENV, WARM_UP_TIMEOUT_S, 1),
    }


def use_page_template(environ: dict[str, str] | None = None) -> None:
    """Put the repository's share/jupyter first on the Jupyter path (``JUPYTER_PATH`` of
    ``environ``, this process's environment by default), where Voilà looks its templates up;
    a FileNotFoundError naming ``make frontend`` when the page's script has not been built."""
    missing = [name for name in BUNDLE_FILES if not (TEMPLATE_STATIC / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"the drawing app's page script is not built ({', '.join(missing)} missing in "
            f"{TEMPLATE_STATIC}): run `make frontend`"
        )
    environ = os.environ if environ is None else environ
    paths = [p for p in environ.get("JUPYTER_PATH", "").split(os.pathsep) if p and p != str(JUPYTER_DATA)]
    environ["JUPYTER_PATH"] = os.pathsep.join([str(JUPYTER_DATA), *paths])


def configure(c, env: Mapping[str, str] = os.environ) -> dict[str, int]:
    """Fill a Voilà traitlets config ``c`` for the drawing app; returns the settings used.
    Also puts the page template on this process's Jupyter path (`use_page_template`)."""
    chosen = settings(env)
    use_page_template()
    c.VoilaConfiguration.template = TEMPLATE
    c.VoilaConfiguration.multi_kernel_manager_class = f"{__name__}.DashboardKernelManager"
    c.VoilaConfiguration.preheat_kernel = chosen["pool_size"] > 0
    c.VoilaConfiguration.default_pool_size = chosen["pool_size"]
    c.VoilaConfiguration.show_tracebacks = True
    c.VoilaConfiguration.extension_denylist = UNUSED_EXTENSIONS
    c.Voila.identity_provider_class = f"{__name__}.DashboardIdentityProvider"
    # Voilà's own refill delay (a trait of its pre-heating subclass) would hold back a replacement a
    # page may already be waiting for; `DashboardKernelManager.pace_refill` paces refills instead.
    c.DashboardKernelManager.fill_delay = 0.0
    c.VoilaExecutor.iopub_timeout = IOPUB_TIMEOUT_S
    c.DashboardKernelManager.refill_delay = float(chosen["refill_s"])
    c.DashboardKernelManager.warm_up_timeout = float(chosen["warm_up_s"])
    c.DashboardKernelManager.max_kernels = chosen["max_kernels"]
    c.DashboardKernelManager.closed_tab_timeout = chosen["closed_tab_s"]
    c.DashboardKernelManager.unconnected_timeout = max(60, chosen["closed_tab_s"])
    # An open page that nobody touches keeps its kernel this long, connected or not.
    c.DashboardKernelManager.cull_idle_timeout = chosen["idle_s"]
    c.DashboardKernelManager.cull_connected = True
    c.DashboardKernelManager.cull_interval = min(CULL_INTERVAL_S, chosen["closed_tab_s"])
    return chosen


class DashboardIdentityProvider(PasswordIdentityProvider):
    """Jupyter's identity provider (anyone may open the app when Voilà has no token), which also
    sets the ``_xsrf`` cookie on the page: Voilà's unload beacon reads it from the cookie, and a
    page pre-rendered in the warm pool is sent without it, so the beacon was refused (403) and the
    kernel of a closed tab lived on until `DashboardKernelManager` reclaimed it."""

    async def get_user(self, handler):
        user = await ensure_async(super().get_user(handler))
        if user is not None and handler.request.method == "GET" and _is_page_handler(handler):
            handler.current_user = user  # what tornado's xsrf_token reads to set the cookie
            handler.xsrf_token  # noqa: B018 (the property sets the cookie when the request has none)
        return user


def _failed(task: asyncio.Task) -> bool:
    """A finished task that was cancelled or raised."""
    return task.cancelled() or task.exception() is not None


def _is_page_handler(handler) -> bool:
    from voila.handler import VoilaHandler  # Voilà is imported only where Voilà runs

    return isinstance(handler, VoilaHandler)


class DashboardKernelManager(AsyncMappingKernelManager):
    """Jupyter's kernel manager with a cap on live kernels and quick reclaiming of kernels whose
    page is gone. Voilà subclasses it to add its pool of pre-heated kernels; pooled kernels
    count toward the cap and are never culled while they wait."""

    max_kernels = Integer(8, config=True, help="Live kernels at most, pooled ones included.")
    closed_tab_timeout = Integer(
        20, config=True, help="Seconds a kernel is kept once its page has disconnected (tab closed)."
    )
    unconnected_timeout = Integer(
        60, config=True, help="Seconds a kernel handed to a page is kept if the page never connects."
    )
    refill_delay = Float(
        REFILL_DELAY_S,
        config=True,
        help="Seconds without a new page before a replacement for a taken warm kernel starts (the lull).",
    )
    warming_at_once = Integer(
        0, config=True, help="Pool kernels warming up at a time (0: one per CPU core but one, at least one)."
    )
    warm_up_timeout = Float(
        WARM_UP_TIMEOUT_S,
        config=True,
        help="Seconds a pool kernel may take to start and run the notebook before it is shut down and replaced.",
    )

    @default("cull_interval")
    def _cull_interval_default(self) -> int:
        return CULL_INTERVAL_S

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._starting: set[str] = set()  # ids of kernels being started, not yet in self._kernels
        self._was_connected: set[str] = set()
        # kernel id -> (monotonic time it was first seen without a connection, last check)
        self._alone: dict[str, tuple[float, float]] = {}
        self._warming: dict[asyncio.Task, float] = {}  # pool tasks past `pace_refill`, not yet warm: since
        self._giving_up: set[asyncio.Task] = set()  # shutdowns of kernels that did not warm up
        self._last_page = -float("inf")  # monotonic time a page last took a kernel or started one

    def live_kernel_count(self) -> int:
        return len(set(self._kernels) | self._starting)

    def _pool_holding(self, task: asyncio.Task | None) -> list[asyncio.Task] | None:
        """The warm pool ``task`` is waiting in (None once a page has taken it, or for a page's own
        kernel)."""
        for pool in (getattr(self, "_pools", None) or {}).values():
            if task in pool:
                return pool
        return None

    @staticmethod
    def is_warm(task: asyncio.Task) -> bool:
        """A pool task whose kernel has started and run the notebook: Voilà's task ends once the
        kernel answers, with the notebook's run (its "task") still going."""
        if not task.done() or _failed(task):
            return False
        result = task.result()
        run = result.get("task") if isinstance(result, dict) else None
        return run is None or run.done()

    def warming_count(self) -> int:
        """Pool kernels warming up now: started past `pace_refill`, still in the pool, the
        notebook not yet run (a kernel a page took is the page's, no longer the pool's). One
        warming up for longer than ``warm_up_timeout`` is given up (`_give_up_warming`)."""
        self._warming = {
            task: since
            for task, since in self._warming.items()
            if not task.done()
            or (self._pool_holding(task) is not None and not _failed(task) and not self.is_warm(task))
        }
        now = time.monotonic()
        for task, since in list(self._warming.items()):
            if task.done() and now - since >= self.warm_up_timeout:
                del self._warming[task]
                self._give_up_warming(task, now - since)
        return len(self._warming)

    def _give_up_warming(self, task: asyncio.Task, seconds: float) -> None:
        """Stop the notebook's run in a pool kernel that did not warm up, and shut the kernel down:
        Voilà's `shutdown_kernel` takes it out of the pool, and ours tops the pool up again."""
        result = task.result()
        self.log.warning(
            "Pool kernel %s has not run the notebook after %.0f s: shutting it down",
            result["kernel_id"],
            seconds,
        )
        result["task"].cancel()
        shutdown = asyncio.ensure_future(ensure_async(self.shutdown_kernel(result["kernel_id"], now=True)))
        self._giving_up.add(shutdown)
        shutdown.add_done_callback(self._giving_up.discard)

    def _drop_failed_slot(self, task: asyncio.Task) -> None:
        """Take a pool task that failed (a refill refused at the cap, a kernel that would not
        start) out of its pool as it ends. Voilà's own `shutdown_kernel` reads the result of every
        task in the pool, so while a failed one sat there, shutting down any kernel failed with
        its error: the unload beacon of a page closed after the cap was reached could not stop
        its kernel. A page coming meanwhile gets the busy page from `start_kernel` instead."""
        if _failed(task):
            pool = self._pool_holding(task)
            if pool is not None:
                pool.remove(task)

    def _warming_limit(self) -> int:
        return self.warming_at_once or max(1, (os.cpu_count() or 1) - 1)

    async def pace_refill(self, *, for_page: bool = False) -> str:
        """Hold a pool kernel's start, called from the pool's own task: until a page takes it
        ("taken"), or, with a free warming slot (`warming_at_once`), once no more than
        `low_water` kernels of the pool are warm ("low") or no page has come for `refill_delay`
        seconds ("lull"). A page's own kernel starts at once ("page"). ``for_page``: this start
        replaces a warm kernel a page has just taken. Returns why it went ahead."""
        task = asyncio.current_task()
        if for_page or self._pool_holding(task) is None:
            self._last_page = time.monotonic()
        if self._pool_holding(task) is None:
            return "page"
        task.add_done_callback(self._drop_failed_slot)
        while True:
            pool = self._pool_holding(task)
            if pool is None:
                return "taken"
            if self.warming_count() < self._warming_limit():
                warm = sum(1 for queued in pool if self.is_warm(queued))
                if warm <= low_water(len(pool)):
                    reason = "low"
                    break
                if time.monotonic() - self._last_page >= self.refill_delay:
                    reason = "lull"
                    break
            await asyncio.sleep(REFILL_CHECK_S)
        self._warming[task] = time.monotonic()
        return reason

    async def start_kernel(self, *, kernel_id: str | None = None, **kwargs) -> str:
        """Start a kernel unless ``max_kernels`` are live: then a 503 with `BUSY_MESSAGE`, which
        Voilà shows as the page (or, for a pool refill, keeps until a page asks for it)."""
        if kernel_id is not None and kernel_id in self:
            return await super().start_kernel(kernel_id=kernel_id, **kwargs)
        await self.pace_refill(for_page=PAGE_URL_VARIABLE in (kwargs.get("env") or {}))
        if self.live_kernel_count() >= self.max_kernels:
            self.log.warning("%d live kernels, the cap: not starting another", self.live_kernel_count())
            raise HTTPError(503, reason=BUSY_MESSAGE)
        kernel_id = kernel_id or str(uuid.uuid4())
        self._starting.add(kernel_id)
        try:
            return await super().start_kernel(kernel_id=kernel_id, **kwargs)
        finally:
            self._starting.discard(kernel_id)

    async def shutdown_kernel(self, kernel_id: str, *args, **kwargs):
        """Shut a kernel down, then top the warm pool up again (the slots of refused refills have
        left it, `_drop_failed_slot`)."""
        try:
            return await ensure_async(super().shutdown_kernel(kernel_id, *args, **kwargs))
        finally:
            self._was_connected.discard(kernel_id)
            self._alone.pop(kernel_id, None)
            self._refill_pools()

    def _refill_pools(self) -> None:
        pools = getattr(self, "_pools", None)  # set by Voilà's pre-heating subclass
        if not pools:
            return
        for notebook, pool in pools.items():
            for task in list(pool):
                if task.done() and _failed(task):  # failed before it reached `pace_refill`
                    pool.remove(task)
            before = set(pool)
            self.fill_if_needed(delay=0, notebook_name=notebook)
            for task in pool:
                if task not in before:
                    task.add_done_callback(self._drop_failed_slot)

    async def cull_kernels(self):
        """Jupyter's periodic check of every kernel, after giving up pool kernels that did not warm
        up in time (also checked while a refill waits, in `pace_refill`)."""
        self.warming_count()
        return await super().cull_kernels()

    def notify_connect(self, kernel_id: str) -> None:
        super().notify_connect(kernel_id)
        self._was_connected.add(kernel_id)

    async def cull_kernel_if_idle(self, kernel_id: str):
        """Reclaim a kernel nobody is connected to: ``closed_tab_timeout`` after its page went
        away, ``unconnected_timeout`` if its page never connected; otherwise Jupyter's idle cull.

        Voilà's subclass skips pooled kernels before calling this, so a kernel's time alone
        starts when it is first checked outside the pool (a gap of more than two check intervals
        means it was in the pool meanwhile)."""
        if kernel_id not in self._kernels:
            return None
        now = time.monotonic()
        if self._kernel_connections.get(kernel_id, 0):
            self._alone.pop(kernel_id, None)
        else:
            since, last = self._alone.get(kernel_id, (now, now))
            if now - last > 2 * self.cull_interval:
                since = now
            self._alone[kernel_id] = (since, now)
            limit = self.closed_tab_timeout if kernel_id in self._was_connected else self.unconnected_timeout
            kernel = self._kernels[kernel_id]
            if now - since >= limit and getattr(kernel, "execution_state", None) != "busy":
                self.log.info("Reclaiming kernel %s: no page connected for %.0f s", kernel_id, now - since)
                await ensure_async(self.shutdown_kernel(kernel_id))
                return None
        return await ensure_async(super().cull_kernel_if_idle(kernel_id))
