"""Fixtures shared across the test suite."""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from pathlib import Path

import pytest

from doodle.app.dashboard import DoodleApp
from doodle.loop.feedback import FeedbackStore
from doodle.model import mlp
from doodle.model.model_io import Model, save_model
from doodle.sources.idx import write_idx
from doodle.sources.mnist import SOURCES
from support.browser import trained_model_or_skip
from support.synthetic import synthetic_mnist

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import pipeline_scratch  # noqa: E402

_DATABASE_NUMBERS = itertools.count(1)  # postgres_url's database names, one per test
# Why a test marked `pipeline` cannot have the outputs it waited for (set before its setup).
_PIPELINE_PROBLEM = pytest.StashKey[str]()

# Small stand-ins for the MNIST source files: same names, headers and layout, few images.
SYNTHETIC_COUNTS = {"train": 400, "test": 120}

# The modules that take longest (their tests' seconds in one `make test` on two busy cores):
# handed out before every other module, so that no long module starts last and the two workers
# finish together. A module missing here runs after them, slow ones first. The first two read
# nothing the pipeline makes: the feedback loop and the Spark cluster wait for the data stages
# (about 70 s after the workers start), and handed out first they kept a worker idle that long.
LONGEST_MODULES = (
    "tests/serving/test_serving_replicas.py",
    "tests/test_promotion.py",
    "tests/test_feedback_loop.py",
    "tests/test_spark_cluster.py",
    "tests/serving/test_serving_score.py",
    "tests/test_dashboard_kernels.py",
    "tests/test_spark_prep.py",
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """For `make test`'s parallel run (pytest-xdist, ``--dist loadgroup``): the tests of a module
    with slow tests, and the tests that share a module-scoped fixture (a server, a trained
    model's predictions), stay on one worker (``xdist_group`` by module), so that setup is made
    once; other tests go to whichever worker is free. LONGEST_MODULES come first, longest first,
    then the other slow modules, so that the long tests start at once and the quick ones fill the
    gaps at the end (the Makefile's ``--no-loadscope-reorder`` keeps this order: xdist would
    otherwise hand out the groups with the most tests first). A new module gets the same
    treatment without a mark. The tests that wait for the whole pipeline run (marked `pipeline`
    without outputs named, or using `trained_model`) come after all others, in the same order;
    those that wait only for the data stages' outputs keep their place: the feedback loop starts
    third, after two long modules that need nothing from the pipeline, by when the data is there."""

    def module_of(item) -> str:
        return item.nodeid.split("::")[0]

    for item in items:
        # The pipeline's model, through the fixture: the test waits for it under `make test`.
        if "trained_model" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("pipeline"):
            item.add_marker(pytest.mark.pipeline)
    slow_modules = {module_of(item) for item in items if item.get_closest_marker("slow")}
    for item in items:
        if module_of(item) in slow_modules or _shares_module_setup(item):
            item.add_marker(pytest.mark.xdist_group(module_of(item)))

    # A group runs on one worker in collection order: it starts as late as its most waiting test.
    group_wait: dict[str, int] = {}
    for item in items:
        group = _xdist_group(item)
        if group is not None:
            group_wait[group] = max(group_wait.get(group, 0), _pipeline_wait(item))

    def start_order(item) -> tuple[bool, int, bool]:
        module = module_of(item)
        rank = LONGEST_MODULES.index(module) if module in LONGEST_MODULES else len(LONGEST_MODULES)
        waits_for_the_whole_run = group_wait.get(_xdist_group(item), _pipeline_wait(item)) == 2
        return waits_for_the_whole_run, rank, module not in slow_modules

    items.sort(key=start_order)  # stable: file order kept within each rank


def _xdist_group(item) -> str | None:
    mark = item.get_closest_marker("xdist_group")
    return None if mark is None else (mark.args[0] if mark.args else mark.kwargs.get("name"))


def _pipeline_wait(item) -> int:
    """What a test waits for under `make test`, where the pipeline runs beside the tests
    (scripts/run_tests.py): 0, nothing (it reads none of the pipeline's outputs); 1, the outputs
    it names (the data stages', `pipeline_scratch.FIRST_STAGES`: ready after a minute or two);
    2, the whole run (the trained model, the executed notebooks)."""
    mark = item.get_closest_marker("pipeline")
    if mark is None:
        return 0
    return 1 if mark.args else 2


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """A test marked `pipeline` waits here, before its setup and outside its timeout, for the
    outputs it names (all of them when it names none) while the pipeline runs beside the tests;
    without a run beside them, it starts at once."""
    mark = item.get_closest_marker("pipeline")
    if mark is not None:
        problem = pipeline_scratch.wait_for_outputs(mark.args or None)
        if problem is not None:
            item.stash[_PIPELINE_PROBLEM] = problem
    return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Fail (never skip) a test whose pipeline outputs will not come: the run beside it failed."""
    problem = item.stash.get(_PIPELINE_PROBLEM, None)
    if problem is not None:
        pytest.fail(f"{problem} (its log is printed after the tests)", pytrace=False)


def _shares_module_setup(item) -> bool:
    """Whether a test uses a fixture made once per module or class (not per test, not per session)."""
    fixtures = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    return any(
        getattr(defs[-1], "scope", "function") in ("module", "class", "package")
        for defs in fixtures.values()
        if defs
    )


@pytest.fixture(scope="session")
def synthetic_raw_dir(tmp_path_factory) -> Path:
    """A folder holding the four MNIST file names as gzipped IDX files of synthetic data
    (SYNTHETIC_COUNTS images per source split); read-only by convention."""
    folder = tmp_path_factory.mktemp("synthetic_raw")
    for seed, (split, (images_name, labels_name, _)) in enumerate(SOURCES.items()):
        images, labels = synthetic_mnist(SYNTHETIC_COUNTS[split], seed)
        write_idx(folder / images_name, images)
        write_idx(folder / labels_name, labels)
    return folder


@pytest.fixture(scope="session")
def spark():
    """One local[1] SparkSession for the whole test session (start-up takes ~10 s)."""
    from doodle.sources.spark_prep import spark_session

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = spark_session("local[1]", "1g", app_name="doodle-tests")
    # Test data are tiny: fewer shuffle tasks make every aggregation quicker.
    session.conf.set("spark.sql.shuffle.partitions", "2")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Model:
    """A seeded, untrained 784-16-10 MLP: what it says is arbitrary, how the app shows it is not."""
    folder = tmp_path_factory.mktemp("tiny_model")
    return save_model(
        folder, mlp.init_params([784, 16, 10], seed=3), normalization={"mean": 0.13, "std": 0.31}
    )


@pytest.fixture(scope="session")
def trained_model() -> Model:
    """The pipeline's model, or a skip when there is none."""
    return trained_model_or_skip()


@pytest.fixture
def store(tmp_path) -> FeedbackStore:
    """An empty feedback store of the test's own."""
    return FeedbackStore(tmp_path / "feedback.sqlite")


@pytest.fixture
def app(tiny_model, store) -> DoodleApp:
    """The drawing app's kernel side on the tiny model, not live (predict is called by the test)."""
    return DoodleApp(model=tiny_model, feedback_store=store, live=False)


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory) -> Path:
    """An MLflow SQLite database with its tables made and nothing in them; read-only by convention.
    MLflow's migrations take seconds for every new store, so tests copy this one (`mlflow_uri`)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_uri(tmp_path, empty_mlflow_db) -> str:
    """A fresh, empty MLflow store of the test's own: ``sqlite:///<tmp_path>/mlflow.db``."""
    shutil.copy(empty_mlflow_db, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server (Debian's package, loopback, a temporary folder) for the whole
    session, started only when a test asks for it and stopped at the end. Without the package the
    test is skipped, except in CI, where scripts/system-deps.sh installs it and its absence fails."""
    from support.postgres import MISSING, PostgresServer, postgres_bindir

    if postgres_bindir() is None:
        if os.environ.get("CI"):
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty database of the test's own on `postgres_server`: its ``postgresql://`` URL."""
    return postgres_server.create_database(f"test_{next(_DATABASE_NUMBERS)}")
