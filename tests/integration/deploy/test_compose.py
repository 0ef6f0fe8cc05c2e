"""The deployment files, checked without Docker (no engine on the development machines or in CI):
docker-compose.yml parses and has redis (AOF on a named volume, healthcheck), api (healthcheck on
/health/ready, waits for a healthy redis) and trainer (the schedule command on the shared data
volume); every RECSVC_* variable it sets is a setting the code reads, its values pass the settings'
own validation, and each service's command is one the CLIs accept, as the README runs them
without Docker. The Dockerfile installs the locked dependencies only."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from recsvc.__main__ import _parser as recsvc_parser
from recsvc.service.settings import PREFIX, Settings, load_settings
from recsvc.service.webhooks.destinations import load_destinations
from training.__main__ import _parser as training_parser

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE_KEYS = '{"an-example-key-0123456789": ["recommend", "export", "ingest", "admin"]}'
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def interpolate(value: str, given: dict[str, str]) -> str:
    """What Compose makes of a value, with `given` as the caller's environment."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if name in given:
            return given[name]
        if op in (":?", "?"):
            raise AssertionError(f"{name} is required: {arg}")
        return arg or ""

    return INTERPOLATION.sub(one, value).replace("$$", "$")


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def test_the_three_services_and_their_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"redis", "api", "trainer"} <= set(services)
    named = set(compose["volumes"])

    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    command = " ".join(command_of(redis))
    assert "--appendonly yes" in command
    (data,) = [v for v in redis["volumes"] if v.split(":")[1] == "/data"]
    assert data.split(":")[0] in named  # AOF on a named volume, not in the container

    assert services["api"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["trainer"]["depends_on"]["redis"]["condition"] == "service_healthy"

    trainer = command_of(services["trainer"])
    data_dir = trainer[trainer.index("--data") + 1]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in services["trainer"]["volumes"]}
    assert mounted.get(data_dir) in named, "the trainer reads the shop's data from a volume"
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in named, f"{source}: every mount is a named volume"


def test_healthchecks_probe_redis_and_the_services_readiness(compose: dict[str, Any]) -> None:
    services = compose["services"]
    redis_check = services["redis"]["healthcheck"]["test"]
    assert "redis-cli" in " ".join(redis_check) and "ping" in " ".join(redis_check)
    api_check = " ".join(services["api"]["healthcheck"]["test"])
    assert "/health/ready" in api_check
    for name in ("redis", "api"):
        check = services[name]["healthcheck"]
        assert {"interval", "timeout", "retries"} <= set(check)


def test_every_recsvc_variable_is_a_setting_and_the_values_are_valid(
    compose: dict[str, Any],
) -> None:
    settings = {PREFIX + name.upper() for name in Settings.__struct_fields__}
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\bRECSVC_[A-Z0-9_]+\b", text))
    assert used, "the compose file configures the service through RECSVC_* variables"
    assert used <= settings, f"not settings the code reads: {sorted(used - settings)}"
    for name, service in compose["services"].items():
        env = {
            key: interpolate(value, {"RECSVC_API_KEYS": EXAMPLE_KEYS})
            for key, value in environment_of(service).items()
        }
        assert set(env) <= settings, name
        load_settings(environ=env)  # a bad value is a ConfigError naming the variable
    api_env = environment_of(compose["services"]["api"])
    assert int(interpolate(api_env["RECSVC_WORKERS"], {})) > 1, "several workers"
    assert api_env["RECSVC_STORE"].startswith("redis://redis:6379")
    assert environment_of(compose["services"]["trainer"])["RECSVC_STORE"] == api_env["RECSVC_STORE"]


def test_each_command_is_one_the_clis_accept(compose: dict[str, Any]) -> None:
    """The same commands run without Docker (the README shows both)."""
    for name, service in compose["services"].items():
        if "command" not in service or name == "redis":
            continue
        argv = command_of(service)
        assert argv[:2] == ["python", "-m"], name
        parser = {"recsvc": recsvc_parser, "training": training_parser}[argv[2]]()
        parser.parse_args(argv[3:])  # exits (SystemExit) on an unknown flag
    trainer = command_of(compose["services"]["trainer"])
    assert trainer[3] == "schedule" and "--cron" in trainer
    assert command_of(compose["services"]["api"])[3] == "serve"


def test_the_image_installs_the_locked_dependencies_only() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    syncs = re.findall(r"^RUN uv sync [^\n]*", dockerfile, re.M)
    assert syncs and all("--frozen" in s and "--no-dev" in s for s in syncs)
    assert "COPY pyproject.toml uv.lock" in dockerfile
    assert re.search(r"^USER (?!root)", dockerfile, re.M), "does not run as root"
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "an allow-list: nothing but what the image needs reaches the build"
    assert "!uv.lock" in rules and "!recsvc/" in rules and "!training/" in rules


def test_the_service_image_leaves_the_training_dependencies_out(compose: dict[str, Any]) -> None:
    """lightfm and scipy are the training job's: the api runs the `service` target, whose syncs
    leave out the `training` group; the trainer runs the `trainer` target, which keeps it."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = dict(re.findall(r"^FROM \S+ AS (\S+)\n(.*?)(?=^FROM |\Z)", dockerfile, re.M | re.S))
    service_syncs = re.findall(r"^RUN uv sync [^\n]*", stages["build-service"], re.M)
    trainer_syncs = re.findall(r"^RUN uv sync [^\n]*", stages["build-trainer"], re.M)
    assert service_syncs and all("--no-group training" in s for s in service_syncs)
    assert trainer_syncs and not any("--no-group training" in s for s in trainer_syncs)
    assert "build-service" in stages["service"] and "build-trainer" in stages["trainer"]
    assert re.search(r"^FROM runtime AS service", dockerfile, re.M), "the default target"
    assert dockerfile.rstrip().splitlines()[-1].startswith("CMD"), "service is the last stage"
    services = compose["services"]
    assert services["api"]["build"]["target"] == "service"
    assert services["trainer"]["build"]["target"] == "trainer"
    assert services["demo-data"]["build"]["target"] == "trainer"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    training = " ".join(project["dependency-groups"]["training"])
    assert "lightfm" in training and "scipy" in training
    assert not any(d.startswith(("lightfm", "scipy")) for d in project["project"]["dependencies"])
    assert "training" in project["tool"]["uv"]["default-groups"], "a plain uv sync installs it"


def test_the_deliverer_runs_beside_the_api_with_the_same_destinations(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    services = compose["services"]
    deliver, api = services["deliver"], services["api"]
    assert command_of(deliver)[2:4] == ["recsvc", "deliver"]
    assert deliver["depends_on"]["redis"]["condition"] == "service_healthy"
    assert environment_of(deliver)["RECSVC_STORE"] == environment_of(api)["RECSVC_STORE"]
    target = environment_of(api)["RECSVC_WEBHOOKS_FILE"]
    assert environment_of(deliver)["RECSVC_WEBHOOKS_FILE"] == target
    for service in (api, deliver):
        (config,) = service["configs"]
        assert config["target"] == target and config["source"] in compose["configs"]
    # With no destinations configured, the default file is valid and names none.
    default = compose["configs"]["webhooks"]["content"].split(":-", 1)[1].rstrip("}")
    path = tmp_path / "webhooks.toml"
    path.write_text(default)
    assert load_destinations(path) == []
