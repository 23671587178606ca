"""deploy/ says what the tests run: every harken command in the compose file and the Kubernetes manifests
parses with harken's own CLI and names a cluster role the tests exercise, and every HARKEN_ variable there is a
setting harken reads (a typo would otherwise be ignored silently at start-up)."""

from __future__ import annotations

from pathlib import Path

import yaml

from api.cli import build_parser
from pipelines.settings import HarkenSettings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _harken_containers() -> list[tuple[str, list[str], dict[str, str]]]:
    """(name, argv, environment) of every harken container in deploy/."""
    out = []
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    for name, svc in compose["services"].items():
        if "build" in svc:
            out.append((f"compose:{name}", svc["command"], dict(svc.get("environment") or {})))
    for doc in yaml.safe_load_all((DEPLOY / "k8s" / "harken.yaml").read_text()):
        if doc["kind"] == "ConfigMap":
            config_env = dict(doc["data"])
    for doc in yaml.safe_load_all((DEPLOY / "k8s" / "harken.yaml").read_text()):
        if doc["kind"] in ("Deployment", "StatefulSet"):
            for c in doc["spec"]["template"]["spec"]["containers"]:
                env = {**config_env, **{e["name"]: e.get("value", "<from cluster>") for e in c.get("env", [])}}
                out.append((f"k8s:{doc['metadata']['name']}", c["args"], env))
    return out


def test_every_deployed_command_parses_and_every_setting_exists():
    containers = _harken_containers()
    roles = set()
    fields = {f"HARKEN_{name.upper()}" for name in HarkenSettings.model_fields}
    parser = build_parser()
    for name, argv, env in containers:
        args = parser.parse_args(argv)
        assert args.command == "serve", name
        roles.add(args.role)
        unknown = {k for k in env if k.startswith("HARKEN_")} - fields
        assert not unknown, (name, unknown)
        assert "HARKEN_BROKER_URL" in env and env["HARKEN_BROKER_URL"].startswith("redis://"), name
        assert "HARKEN_DATABASE_URL" in env, name  # a shared store: SQLite per node would split the data
    assert roles == {"gateway", "worker"}
    assert len([c for c in containers if "worker" in c[0]]) >= 2  # a takeover needs a second worker
