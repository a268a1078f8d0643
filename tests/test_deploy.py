"""deploy/compose.yaml cannot run here; this keeps it in step with the code: services, images, commands,
health checks, volumes and every ``PORTAL_*`` variable against portal/config.py."""
from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import yaml

from portal.config import DEFAULTS
from portal.jobs import QUEUE_NAMES
from portal.files.storage import parse_storage_url

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "deploy" / "compose.yaml"
#: Services built from the repository (deploy/Dockerfile) and what each runs.
PORTAL_SERVICES = {"migrate": ["db", "upgrade"], "portal": ["serve"], "worker": ["worker"], "dispatcher": ["jobs", "run"]}
#: The engines, each from its official image.
IMAGES = {"postgres": "postgres:", "redis": "redis:", "minio": "minio/minio:", "minio-bucket": "minio/mc:"}
ONE_SHOT = {"migrate", "minio-bucket"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def portal_env(services) -> dict[str, str]:
    env = services["portal"]["environment"]
    return env if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def test_the_services_and_their_images(services):
    assert set(services) == set(PORTAL_SERVICES) | set(IMAGES)
    for name, prefix in IMAGES.items():
        assert services[name]["image"].startswith(prefix), name
    dockerfile = ROOT / "deploy" / "Dockerfile"
    for name in PORTAL_SERVICES:
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == dockerfile, name
    text = dockerfile.read_text()
    assert "pip install '.[scale]'" in text and "COPY portal ./portal" in text


def test_every_portal_variable_is_a_config_key_with_a_value_the_app_accepts(services):
    seen = set()
    for name, service in services.items():
        env = service.get("environment") or {}
        for var, value in env.items():
            if not var.startswith("PORTAL_") or var == "PORTAL_INSTANCE":  # the instance folder is no config key
                continue
            key = var[len("PORTAL_"):]
            assert key in DEFAULTS, f"{name}: {var} is not a setting in portal/config.py DEFAULTS"
            seen.add(key)
    assert {"SQLALCHEMY_DATABASE_URI", "REDIS_URL", "STORAGE_URL", "S3_ENDPOINT_URL"} <= seen
    env = portal_env(services)
    import json

    assert isinstance(json.loads(env["PORTAL_SQLALCHEMY_ENGINE_OPTIONS"]), dict)  # parsed as JSON at start
    bucket, _prefix = parse_storage_url(env["PORTAL_STORAGE_URL"])
    assert env["PORTAL_SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in env["PORTAL_SQLALCHEMY_DATABASE_URI"]
    assert env["PORTAL_REDIS_URL"].startswith("redis://redis:6379")
    assert env["PORTAL_S3_ENDPOINT_URL"] == "http://minio:9000"
    # The bucket the portal writes to is the one the one-shot service creates, with MinIO's credentials.
    bucket_cmd = " ".join(services["minio-bucket"]["command"])
    assert f"mc mb --ignore-existing local/{bucket}" in bucket_cmd
    minio = services["minio"]["environment"]
    assert env["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    assert f"{minio['MINIO_ROOT_USER']} {minio['MINIO_ROOT_PASSWORD']}" in bucket_cmd
    # The database the portal names is the one the postgres service creates.
    pg = services["postgres"]["environment"]
    assert (f"{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}"
            in env["PORTAL_SQLALCHEMY_DATABASE_URI"])


def test_the_commands_are_portal_cli_commands_with_options_that_exist(app, services):
    for name, words in PORTAL_SERVICES.items():
        argv = services[name]["command"]
        assert argv[:3] == ["flask", "--app", "portal"], name
        rest = argv[3:]
        assert rest[:len(words)] == words, name
        # Parse the arguments with the real click command: an option that does not exist fails here.
        command: click.Command = app.cli.commands[rest[0]]
        rest = rest[1:]
        while isinstance(command, click.Group):
            command, rest = command.get_command(click.Context(command), rest[0]), rest[1:]
            assert command is not None, name
        command.make_context(name, list(rest))
    worker = services["worker"]["command"]
    queues = worker[worker.index("--queues") + 1].split(",")
    assert set(queues) == set(QUEUE_NAMES)  # one worker service takes every queue
    serve = services["portal"]["command"]
    assert serve[serve.index("--bind") + 1].startswith("0.0.0.0:")


def test_health_checks_and_start_order(services):
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no", name
            continue
        test = service["healthcheck"]["test"]
        assert test and test[0] in ("CMD", "CMD-SHELL"), name
    port = services["portal"]["command"][services["portal"]["command"].index("--bind") + 1].split(":")[1]
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(services["portal"]["healthcheck"]["test"])
    assert services["portal"]["ports"] == [f"{port}:{port}"]
    deps = services["portal"]["depends_on"]
    assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert deps["minio-bucket"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    # The worker and the dispatcher start after the portal made the instance keys, which they share.
    for name in ("worker", "dispatcher"):
        assert services[name]["depends_on"]["portal"]["condition"] == "service_healthy"


def test_volumes_keep_the_data_and_the_instance_keys(compose, services):
    declared = set(compose["volumes"])
    mounts = {name: {v.split(":")[0]: v.split(":")[1] for v in s.get("volumes", [])} for name, s in services.items()}
    assert mounts["postgres"]["pgdata"] == "/var/lib/postgresql/data"
    assert mounts["redis"]["redisdata"] == "/data" and "--appendonly" in services["redis"]["command"]
    assert re.search(r"server (\S+)", " ".join(services["minio"]["command"])).group(1) == mounts["minio"]["miniodata"]
    instance = portal_env(services)["PORTAL_INSTANCE"]
    for name in PORTAL_SERVICES:
        assert mounts[name]["instance"] == instance, name  # secret_key and data.key: one copy for all
    used = {v for m in mounts.values() for v in m}
    assert used == declared


def test_the_compose_file_documents_its_start(services):
    head = COMPOSE.read_text().split("\n\n", 1)[0]
    assert "docker compose -f deploy/compose.yaml up" in head
    assert "flask --app portal users create admin --role ops --password-stdin" in head
