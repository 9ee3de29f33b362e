"""compose.yaml, the whole stack for several machines, parsed (no container engine runs here): two
API replicas on the shared PostgreSQL and MLflow registry, Prometheus scraping both, Grafana on
that Prometheus; every setting a replica gets is one the API accepts, and every file it mounts exists."""

from __future__ import annotations

import re

import pytest
import yaml
from serving_helpers import REPO_ROOT

from serving.config import Settings

COMPOSE = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
API_SERVICES = ("api-1", "api-2")
LOCK = dict(
    line.split("==") for line in (REPO_ROOT / "requirements.lock").read_text().splitlines() if "==" in line
)


def _interpolate(value: str) -> str:
    """Compose's ``${NAME:?message}`` / ``${NAME}`` with a stand-in value, as a shell would set it."""
    return re.sub(r"\$\{(\w+)(:?[?-][^}]*)?\}", lambda match: f"<{match.group(1)}>", value)


def _uvicorn_port() -> str:
    command = (REPO_ROOT / "Dockerfile").read_text().rsplit("CMD", 1)[1]
    return re.search(r'"--port", "(\d+)"', command).group(1)


def test_the_stack_has_two_replicas_postgres_mlflow_prometheus_and_grafana():
    assert set(SERVICES) == {"postgres", "mlflow", *API_SERVICES, "prometheus", "grafana"}
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    published = [service["ports"][0].split(":")[-2] for service in (SERVICES[name] for name in API_SERVICES)]
    assert len(set(published)) == 2, "each replica needs a host port of its own"


@pytest.mark.parametrize("name", API_SERVICES)
def test_each_replica_uses_the_shared_store_and_the_registry_champion(name):
    service = SERVICES[name]
    env = {key: _interpolate(str(value)) for key, value in service["environment"].items()}
    settings = Settings.from_env(env)  # what the replica's server would make of them
    assert settings.feedback_url.startswith("postgresql://doodle:<DOODLE_DB_PASSWORD>@postgres:5432/")
    assert settings.model_uri == "models:/doodle-mlp@champion"
    mlflow_port = SERVICES["mlflow"]["command"][SERVICES["mlflow"]["command"].index("--port") + 1]
    assert env["MLFLOW_TRACKING_URI"] == f"http://mlflow:{mlflow_port}"
    assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "mlflow" in service["depends_on"]
    assert service["ports"][0].endswith(f":{_uvicorn_port()}")
    assert service["build"]["context"] == "."
    assert service["build"]["args"]["EXTRA_REQUIREMENTS"] in LOCK  # the registry client, pinned


def test_mlflow_keeps_its_registry_in_postgres_and_serves_the_artifacts():
    command = SERVICES["mlflow"]["command"]
    backend = _interpolate(command[command.index("--backend-store-uri") + 1])
    database = backend.rsplit("/", 1)[1]
    assert backend.startswith("postgresql+psycopg://doodle:<DOODLE_DB_PASSWORD>@postgres:5432/")
    assert database != SERVICES["postgres"]["environment"]["POSTGRES_DB"], (
        "MLflow's tables in a database of their own"
    )
    assert f"CREATE DATABASE {database}" in (REPO_ROOT / "deploy" / "postgres-init.sql").read_text()
    destination = command[command.index("--artifacts-destination") + 1]
    assert any(volume.endswith(f":{destination}") for volume in SERVICES["mlflow"]["volumes"])
    dockerfile = (REPO_ROOT / SERVICES["mlflow"]["build"]["dockerfile"]).read_text()
    for package in ("mlflow", "psycopg"):
        assert re.search(rf"\b{package}(\[binary\])?=={re.escape(LOCK[package])}", dockerfile), package


def test_prometheus_scrapes_both_replicas_and_grafana_reads_that_prometheus():
    config_mount = next(
        v for v in SERVICES["prometheus"]["volumes"] if v.endswith("/etc/prometheus/prometheus.yml:ro")
    )
    config = yaml.safe_load((REPO_ROOT / config_mount.split(":")[0]).read_text())
    targets = [
        t for job in config["scrape_configs"] for group in job["static_configs"] for t in group["targets"]
    ]
    assert sorted(targets) == [f"{name}:{_uvicorn_port()}" for name in API_SERVICES]
    datasource_mount = next(v for v in SERVICES["grafana"]["volumes"] if "/datasources/" in v)
    datasource = yaml.safe_load((REPO_ROOT / datasource_mount.split(":")[0]).read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    dashboard = (REPO_ROOT / "serving/monitoring/grafana/dashboards/doodle-api.json").read_text()
    assert datasource["uid"] in dashboard


def test_every_mounted_file_exists_and_no_password_is_written_down():
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO_ROOT / source).exists(), f"{name} mounts a missing {source}"
    text = (REPO_ROOT / "compose.yaml").read_text()
    assert "doodle-test-password" not in text
    assert all(
        "${DOODLE_DB_PASSWORD:?" in line
        for line in text.splitlines()
        if "DOODLE_DB_PASSWORD" in line and not line.lstrip().startswith("#")
    )
