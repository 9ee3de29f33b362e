"""The API as a package of its own: `pip install .[serve]` in a fresh venv holds nothing of Spark,
DVC or Jupyter and serves /predict over real HTTP; the Dockerfile builds the API from that extra
(slim base, non-root user, a health check that works). No container engine runs here, so the
Dockerfile is parsed and its health check command is run against a real server."""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import subprocess
import sys
import tomllib

import httpx
import pytest
from serving_helpers import DIGIT_VECTOR, REPO_ROOT, write_model

from support.servers import UvicornServer, free_port

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
LOCK = REPO_ROOT / "requirements.lock"
# Import names the API must run without.
HEAVY = (
    "pyspark",
    "dvc",
    "jupyterlab",
    "jupyter_server",
    "notebook",
    "voila",
    "ipykernel",
    "papermill",
    "mlflow",
)


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_serve_extra_names_nothing_of_spark_dvc_or_jupyter():
    serve = {_name(r) for r in PYPROJECT["project"]["dependencies"] + EXTRAS["serve"]}
    assert {"fastapi", "uvicorn", "numpy"} <= serve
    assert not serve & {
        "pyspark",
        "dvc",
        "jupyterlab",
        "voila",
        "ipykernel",
        "papermill",
        "mlflow",
        "pyarrow",
    }


def test_dev_extra_is_everything_make_installs_and_the_lock_pins_it():
    assert EXTRAS["dev"] == ["doodle-digits[serve,pipeline,dashboard,test]"]
    pinned = {
        _name(line) for line in LOCK.read_text().splitlines() if "==" in line and not line.startswith("#")
    }
    wanted = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    for extra in ("serve", "pipeline", "dashboard", "test"):
        wanted |= {_name(r) for r in EXTRAS[extra]}
    assert not wanted - pinned, f"not pinned in requirements.lock: {sorted(wanted - pinned)}"


def test_importing_jsonschema_compiles_no_iri_grammar():
    """The lock leaves rfc3987-syntax out (Makefile's `lock`): with it, every process that imports
    jsonschema (papermill, Voila, nbval) spends 1.5 s of CPU compiling IRI parsers."""
    pinned = {_name(line) for line in LOCK.read_text().splitlines() if "==" in line}
    assert not pinned & {"rfc3987-syntax", "lark"}
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, nbformat; print(sorted(m for m in sys.modules if m.startswith(('lark', 'rfc3987'))))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert imported == "[]"


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in dockerfile.splitlines() if not line.lstrip().startswith("#"))
    )
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            pairs.append((keyword.upper(), " ".join(rest.split())))
    return pairs


@pytest.fixture(scope="module")
def final_stage() -> list[tuple[str, str]]:
    instructions = _instructions((REPO_ROOT / "Dockerfile").read_text())
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert starts, "no FROM"
    for keyword, args in instructions:
        if keyword == "FROM":
            image = args.split()[0]
            assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", image), (
                f"not a slim Python 3.11 base: {image}"
            )
        if keyword == "COPY" and not args.startswith("--from"):
            for source in shlex.split(args)[:-1]:
                assert (REPO_ROOT / source).exists(), f"COPY source missing: {source}"
    return instructions[starts[-1] :]


def _exec_form(args: str) -> list[str]:
    value = ast.literal_eval(args)
    assert isinstance(value, list), f"use the exec form: {args}"
    return value


def test_dockerfile_installs_the_serve_extra_with_the_locked_versions(final_stage):
    installs = [args for keyword, args in final_stage if keyword == "RUN" and "pip install" in args]
    assert len(installs) == 1
    assert "[serve]" in installs[0] and "requirements.lock" in installs[0] and "--constraint" in installs[0]
    assert not re.search(r"\[[^\]]*(dev|pipeline|dashboard|test)", installs[0])


def test_dockerfile_runs_as_a_non_root_user(final_stage):
    keywords = [keyword for keyword, _ in final_stage]
    users = [args for keyword, args in final_stage if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert keywords.index("USER") < keywords.index("CMD")
    assert not any(keyword == "RUN" for keyword in keywords[keywords.index("USER") :]), (
        "RUN after USER runs as the user"
    )


def test_dockerfile_serves_the_app_factory_on_the_exposed_port_with_a_health_check(final_stage):
    args = dict(final_stage)
    command = _exec_form(args["CMD"])
    assert command[:3] == ["uvicorn", "serving.main:create_app", "--factory"]
    port = command[command.index("--port") + 1]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert args["EXPOSE"].split() == [port]
    healthcheck = args["HEALTHCHECK"]
    assert re.search(r"--interval=\d+s", healthcheck) and re.search(r"--timeout=\d+s", healthcheck)
    probe = _exec_form(healthcheck.split(" CMD ", 1)[1])
    assert f"127.0.0.1:{port}/readyz" in probe[-1]


def _health_probe(port: int) -> list[str]:
    args = dict(_instructions((REPO_ROOT / "Dockerfile").read_text()))
    probe = _exec_form(args["HEALTHCHECK"].split(" CMD ", 1)[1])
    exposed = args["EXPOSE"].split()[0]
    return [part.replace(f"127.0.0.1:{exposed}", f"127.0.0.1:{port}") for part in probe]


@pytest.mark.slow
def test_serve_extra_in_a_fresh_venv_serves_predict_over_http(tmp_path):
    """`pip install .[serve]` (lock versions as constraints) from a copy of the sources."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    for package in ("doodle", "serving"):
        shutil.copytree(REPO_ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    # The README's command, without compiling every installed module to bytecode first (a third of
    # the install's CPU); the server below compiles what it imports.
    install = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",
            "--constraint",
            str(LOCK),
            f"{source}[serve]",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    assert subprocess.run([python, "-m", "pip", "check"], capture_output=True, timeout=120).returncode == 0

    outside = tmp_path / "elsewhere"  # not the repository: `serving` must come from site-packages
    outside.mkdir()
    found = subprocess.run(
        [
            python,
            "-c",
            "import importlib.util as u, sys, serving.main; print(serving.main.__file__);"
            f" print(*[n for n in {HEAVY!r} if u.find_spec(n)])",
        ],
        cwd=outside,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr
    location, heavy = found.stdout.splitlines()
    assert "site-packages" in location
    assert heavy == "", f"the serve extra pulled in: {heavy}"

    write_model(tmp_path / "model")
    env = {
        "DOODLE_MODEL_PATH": str(tmp_path / "model"),
        "DOODLE_FEEDBACK_DB": str(tmp_path / "feedback.sqlite"),
    }
    with UvicornServer(env=env, log_path=tmp_path / "server.log", python=python, cwd=outside) as server:
        response = httpx.post(server.url + "/predict", json={"image_vector": DIGIT_VECTOR}, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["Result"] in range(10)
        healthy = subprocess.run([python, *_health_probe(server.port)[1:]], capture_output=True, timeout=30)
        assert healthy.returncode == 0, healthy.stderr
    unhealthy = subprocess.run([python, *_health_probe(free_port())[1:]], capture_output=True, timeout=30)
    assert unhealthy.returncode != 0
