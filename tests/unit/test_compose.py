"""docker-compose.yml as a deployment: checked by parsing it (no docker on CI machines)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from marketdata.config import ENV_OVERRIDES, parse_config

ROOT = Path(__file__).parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
VARIABLE = re.compile(r"\$\{(\w+)")


def _environment(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service].get("environment", {}).items()}


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_service_restarts_has_a_healthcheck_and_a_pinned_image(name):
    service = SERVICES[name]
    assert service.get("restart") == "unless-stopped"
    assert service["healthcheck"]["test"], name
    image = service["image"]
    repository, _, tag = image.rpartition(":")
    assert repository, image
    assert re.search(r"\d", tag), f"{image}: pin a version, not {tag or 'no tag'}"


@pytest.mark.parametrize(
    ("name", "port", "path"), [("marketdata", 9090, "/ready"), ("persist", 9091, "/health")]
)
def test_endpoints_listen_in_the_container_are_published_and_checked(name, port, path):
    service = SERVICES[name]
    host_key = (
        "MARKETDATA_HEALTH_HOST" if name == "marketdata" else "MARKETDATA_PERSIST_HEALTH_HOST"
    )
    assert _environment(name)[host_key] == "0.0.0.0"
    assert any(str(p).endswith(f":{port}:{port}") for p in service["ports"])
    assert f"127.0.0.1:{port}{path}" in " ".join(service["healthcheck"]["test"])
    for dependency, condition in service["depends_on"].items():
        assert condition == {"condition": "service_healthy"}, (name, dependency)
        assert "healthcheck" in SERVICES[dependency]


def test_data_lives_in_named_volumes_and_redis_keeps_an_append_only_file():
    for name, mount in (("redis", "/data"), ("timescaledb", "/var/lib/postgresql/data"),
                        ("mongo", "/data/db")):  # fmt: skip
        volume, _, target = SERVICES[name]["volumes"][0].partition(":")
        assert target == mount, name
        assert volume in COMPOSE["volumes"], name
    command = SERVICES["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"


def test_no_password_in_the_file_and_every_variable_in_the_env_example():
    text = (ROOT / "docker-compose.yml").read_text()
    example = (ROOT / ".env.example").read_text()
    for name in SERVICES:
        for key, value in _environment(name).items():
            if "PASSWORD" in key:
                assert value.startswith("${"), key
            credentials = re.search(r"//[^/@\s]*:([^@/\s]+)@", value)
            if credentials:
                assert credentials.group(1).startswith("${"), key
    for variable in set(VARIABLE.findall(text)):
        assert re.search(rf"^{variable}=", example, re.M), variable


def test_every_marketdata_variable_is_one_the_config_reads_and_mongo_can_be_switched_on():
    for name in ("marketdata", "persist"):
        for key in _environment(name):
            assert key in ENV_OVERRIDES, key
    raw = {"exchanges": {"binance_futures": {"symbols": ["BTCUSDT"]}}}
    env = {"MARKETDATA_MONGO_ENABLED": "true", "MARKETDATA_PERSIST_HEALTH_HOST": "0.0.0.0",
           "MARKETDATA_HEALTH_HOST": "0.0.0.0"}  # fmt: skip
    config = parse_config(raw, environ=env)
    assert config.persist.mongo.enabled is True
    assert (config.health_host, config.persist.health_host) == ("0.0.0.0", "0.0.0.0")
    assert (
        parse_config(raw, environ={"MARKETDATA_MONGO_ENABLED": "false"}).persist.mongo.enabled
        is False
    )
