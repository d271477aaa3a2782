"""docker-compose.yml, the Kubernetes manifests and the systemd units agree with the code.

Every command names a program and subcommand that exist, every KIRIM_* variable is a field
of Settings, every queue is one of producer.core.routing.Queues.ALL, every Secret reference is
generated or documented, and every worker outlives its longest task on shutdown.
"""

from __future__ import annotations

import configparser
import importlib.util
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from producer.core.routing import Queues
from producer.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy/k8s/base"
OVERLAY = ROOT / "deploy/k8s/overlays/example"
SYSTEMD = ROOT / "deploy/systemd"
LONGEST_TASK_S = float(Settings.model_fields["nusasms_read_timeout_s"].default
                       + Settings.model_fields["send_lease_s"].default)
CELERY_SUBCOMMANDS = {"worker", "beat", "flower", "inspect"}


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(BASE.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in manifests() if d["kind"] == kind}


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return list(deployment["spec"]["template"]["spec"]["containers"])


def option(args: list[str], flag: str) -> str | None:
    """The value after `flag` in an argument list, or None."""
    return args[args.index(flag) + 1] if flag in args else None


def check_command(args: list[str]) -> None:
    """`args` runs something that exists in this repo's environment."""
    program = Path(args[0]).name
    if program == "celery":
        assert args[1:3] == ["-A", "worker.app"], args
        assert args[3] in CELERY_SUBCOMMANDS, args
        if args[3] == "worker":
            assert option(args, "-P") == "threads", args
            queues = (option(args, "-Q") or "").split(",")
            assert set(queues) <= set(Queues.ALL), f"unknown queue in {args}"
    elif program == "kirim":
        scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
        assert "kirim" in scripts and args[1] in {"api", "send", "status", "dlq", "account"}
    elif program == "uvicorn":
        assert args[1] == "producer.api:app" and "--no-access-log" in args, args
    elif program == "python":
        if args[1] == "-m":
            assert importlib.util.find_spec(args[2]) is not None, args
        else:
            assert args[1] == "-c" and compile(args[2], "<healthcheck>", "exec"), args
    elif program != "redis-server":
        raise AssertionError(f"unknown program {program} in {args}")


def kirim_names(env: dict[str, Any] | list[Any] | None) -> Iterator[str]:
    items = env.keys() if isinstance(env, dict) else (e["name"] for e in env or [])
    return (name for name in items if name.startswith("KIRIM_"))


def assert_settings_fields(names: Iterator[str] | list[str], where: str) -> None:
    fields = set(Settings.model_fields)
    for name in names:
        assert name.removeprefix("KIRIM_").lower() in fields, f"{name} ({where}) is no setting"


# --- docker compose ----------------------------------------------------------------------

def test_compose_has_every_process_of_a_deployment() -> None:
    services = compose()["services"]
    assert {"redis", "worker-otp", "worker-general", "worker-maintenance", "beat",
            "beat-standby", "flower", "api", "sandbox"} <= set(services)
    assert services["sandbox"]["profiles"] == ["sandbox"]
    redis = services["redis"]["command"]
    assert "--appendonly" in redis and "--requirepass" in redis
    for name in ("redis", "worker-otp", "worker-general", "worker-maintenance", "flower",
                 "api", "sandbox"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name


@pytest.mark.parametrize("name", sorted(compose()["services"]))
def test_compose_command_and_settings(name: str) -> None:
    service = compose()["services"][name]
    check_command(service["command"])
    if "healthcheck" in service and name != "redis":
        check_command(service["healthcheck"]["test"][1:])
    assert_settings_fields(kirim_names(service.get("environment")), name)
    if service["command"][3:4] == ["worker"]:
        grace = int(service["stop_grace_period"].rstrip("s"))
        assert grace > LONGEST_TASK_S, f"{name} is killed before its longest task ends"


def test_compose_flower_auth_is_an_environment_option() -> None:
    from flower.options import options

    assert "basic-auth" in options._options  # FLOWER_BASIC_AUTH, read by Flower
    assert "FLOWER_BASIC_AUTH" in compose()["services"]["flower"]["environment"]


# --- Kubernetes ---------------------------------------------------------------------------

def test_every_manifest_is_named_and_listed_in_the_kustomization() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    for doc in manifests():
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], doc
    config = dict(line.split("=", 1) for line in kustomization["configMapGenerator"][0]["literals"])
    assert_settings_fields([k for k in config if k.startswith("KIRIM_")], "kirim-config")


@pytest.mark.parametrize("name", sorted(of_kind("Deployment")))
def test_deployment_probes_resources_and_graceful_termination(name: str) -> None:
    deployment = of_kind("Deployment")[name]
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items())
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] >= 30
    for container in containers(deployment):
        check_command(container["args"])
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        assert_settings_fields(kirim_names(container.get("env")), name)
        if name != "kirim-beat":  # a standby beat is idle by design: see beat.yaml
            assert "livenessProbe" in container and "readinessProbe" in container, name
        if container["args"][3] == "worker":
            assert pod["terminationGracePeriodSeconds"] > LONGEST_TASK_S, name
            assert "startupProbe" in container
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                check_command(container[probe]["exec"]["command"])


def test_scaled_objects_target_workers_on_their_own_queues() -> None:
    deployments = of_kind("Deployment")
    auths = of_kind("TriggerAuthentication")
    scaled = of_kind("ScaledObject")
    assert {so["spec"]["scaleTargetRef"]["name"] for so in scaled.values()} == {
        n for n in deployments if n.startswith("kirim-worker-")}
    for so in scaled.values():
        target = deployments[so["spec"]["scaleTargetRef"]["name"]]
        consumed = option(containers(target)[0]["args"], "-Q") or ""
        assert so["spec"]["minReplicaCount"] >= 1, "reserved tasks are not in the list"
        for trigger in so["spec"]["triggers"]:
            assert trigger["type"] == "redis"
            assert trigger["authenticationRef"]["name"] in auths
            queue = trigger["metadata"]["listName"]
            assert queue in Queues.ALL and queue in consumed.split(","), trigger


def test_disruption_budgets_and_services_select_deployments() -> None:
    labels = [d["spec"]["template"]["metadata"]["labels"] for d in of_kind("Deployment").values()]
    selectors = [p["spec"]["selector"]["matchLabels"] for p in
                 of_kind("PodDisruptionBudget").values()]
    selectors += [s["spec"]["selector"] for s in of_kind("Service").values()]
    for selector in selectors:
        assert any(selector.items() <= pod.items() for pod in labels), selector
    assert {"kirim-worker-otp", "kirim-worker-general", "kirim-worker-maintenance",
            "kirim-beat", "kirim-api"} <= set(of_kind("PodDisruptionBudget"))
    assert of_kind("Deployment")["kirim-beat"]["spec"]["replicas"] == 2


def secret_refs() -> Iterator[tuple[str, str]]:
    """(secret name, key) of every secretKeyRef and KEDA secretTargetRef in the base."""
    text = "\n".join(p.read_text() for p in BASE.glob("*.yaml"))
    for doc in yaml.safe_load_all(text.replace("\n---", "\n---\n")):
        yield from _refs(doc)


def _refs(node: Any) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "secretKeyRef":
                yield value["name"], value["key"]
            elif key == "secretTargetRef":
                yield from ((ref["name"], ref["key"]) for ref in value)
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_every_secret_reference_is_generated_and_documented() -> None:
    overlay = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    generated = {g["name"]: {lit.split("=", 1)[0] for lit in g["literals"]}
                 for g in overlay["secretGenerator"]}
    readme = (ROOT / "deploy/k8s/README.md").read_text()
    documented = dict(re.findall(r"^\| `(kirim-[a-z-]+)` \| (.+) \|$", readme, re.M))
    refs = set(secret_refs())
    assert refs, "the base refers to no Secret"
    for name, key in refs:
        assert key in generated.get(name, set()), f"{name}/{key} not in the example overlay"
        assert f"`{key}`" in documented.get(name, ""), f"{name}/{key} not in deploy/k8s/README"
    assert (OVERLAY / overlay["resources"][0]).resolve() == BASE.resolve()


# --- systemd ------------------------------------------------------------------------------

def env_file(path: Path) -> dict[str, str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def unit_cases() -> Iterator[tuple[str, dict[str, str]]]:
    """Each unit with the variables of each example instance env file it would read."""
    for path in sorted(SYSTEMD.glob("*.service")):
        if path.name == "kirim-worker@.service":
            for group in sorted(SYSTEMD.glob("worker-*.env")):
                yield path.name, env_file(group)
        else:
            yield path.name, {}


@pytest.mark.parametrize(("unit", "env"), list(unit_cases()))
def test_systemd_unit_commands(unit: str, env: dict[str, str]) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(SYSTEMD / unit)
    line = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], parser["Service"]["ExecStart"])
    exec_start = line.split()
    if exec_start[0] == "/bin/sh":
        exec_start = [exec_start[2].lstrip("'"), *exec_start[3:]]
    check_command([Path(exec_start[0]).name, *exec_start[1:]])
    for pair in parser["Service"].get("Environment", "").split():
        assert_settings_fields([pair.split("=", 1)[0]], unit)
    assert_settings_fields([k for k in env if k.startswith("KIRIM_")], unit)
    if exec_start[3:4] == ["worker"]:
        assert float(parser["Service"]["TimeoutStopSec"]) > LONGEST_TASK_S
        assert parser["Service"]["KillSignal"] == "SIGTERM"


def test_systemd_example_environment_is_settings() -> None:
    example = env_file(SYSTEMD / "kirim.env.example")
    assert_settings_fields(list(example), "kirim.env.example")
    ports = [env_file(p)["KIRIM_METRICS_PORT"] for p in SYSTEMD.glob("worker-*.env")]
    assert len(set(ports)) == len(ports) == 3, "one metrics port per worker on a host"


# --- operating it like the tools it sits beside (issue 19) -------------------------------

def overlay_config() -> dict[str, str]:
    """kirim-config as the example overlay renders it: the base's literals, then the overlay's."""
    literals: dict[str, str] = {}
    for path in (BASE / "kustomization.yaml", OVERLAY / "kustomization.yaml"):
        for generator in yaml.safe_load(path.read_text()).get("configMapGenerator", []):
            if generator["name"] == "kirim-config":
                literals.update(line.split("=", 1) for line in generator["literals"])
    return literals


def test_keda_triggers_read_the_workers_redis_host() -> None:
    """KEDA's operator resolves short names in its own namespace: every trigger takes the
    address from the scaled Deployment's REDIS_HOST (kirim-config), which is fully qualified."""
    deployments = of_kind("Deployment")
    for config in (overlay_config(), dict(line.split("=", 1) for line in yaml.safe_load(
            (BASE / "kustomization.yaml").read_text())["configMapGenerator"][0]["literals"])):
        host, _, port = config["REDIS_HOST"].rpartition(":")
        assert "." in host and port.isdigit(), f"{config['REDIS_HOST']}: not host.ns.svc:port"
    for so in of_kind("ScaledObject").values():
        target = containers(deployments[so["spec"]["scaleTargetRef"]["name"]])[0]
        config_maps = {e["configMapRef"]["name"] for e in target.get("envFrom", [])
                       if "configMapRef" in e}
        assert config_maps == {"kirim-config"}, "the scaled container reads REDIS_HOST there"
        for trigger in so["spec"]["triggers"]:
            metadata = trigger["metadata"]
            assert metadata.get("addressFromEnv") == "REDIS_HOST", trigger
            assert not {"address", "addresses", "host", "hosts", "port", "ports"} & set(metadata)


def test_keda_scaled_deployments_set_no_replicas() -> None:
    """A replicas field would reset KEDA's count on every `kubectl apply`."""
    for so in of_kind("ScaledObject").values():
        name = so["spec"]["scaleTargetRef"]["name"]
        assert "replicas" not in of_kind("Deployment")[name]["spec"], name
    overlay = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    for patch in overlay.get("patches", []):
        assert "/spec/replicas" not in patch["patch"] or patch["target"]["kind"] != "Deployment"


def allowed_disruptions(budget: dict[str, Any], pods: int) -> int:
    """How many pods a PodDisruptionBudget lets a drain evict when `pods` are running."""
    spec = budget["spec"]
    if "maxUnavailable" in spec:
        value = spec["maxUnavailable"]
        if isinstance(value, str) and value.endswith("%"):
            return -(-pods * int(value[:-1]) // 100)  # Kubernetes rounds up
        return int(value)
    value = spec["minAvailable"]
    if isinstance(value, str) and value.endswith("%"):
        return pods - -(-pods * int(value[:-1]) // 100)
    return pods - int(value)


def test_disruption_budgets_let_a_drain_finish_at_the_minimum_replicas() -> None:
    """`kubectl drain` waits forever on a budget that allows no eviction: each allows one at
    the group's minimum (KEDA's minReplicaCount, else the Deployment's replicas)."""
    minimum = {name: d["spec"].get("replicas", 1) for name, d in of_kind("Deployment").items()}
    minimum |= {so["spec"]["scaleTargetRef"]["name"]: so["spec"]["minReplicaCount"]
                for so in of_kind("ScaledObject").values()}
    deployments = of_kind("Deployment")
    for name, budget in of_kind("PodDisruptionBudget").items():
        selector = budget["spec"]["selector"]["matchLabels"].items()
        selected = [d for d, dep in deployments.items()
                    if selector <= dep["spec"]["template"]["metadata"]["labels"].items()]
        assert selected, name
        pods = sum(minimum[d] for d in selected)
        assert allowed_disruptions(budget, pods) >= 1, f"{name} blocks a drain at {pods} pod(s)"


def unit_values(path: Path) -> dict[str, list[str]]:
    """Every key of a unit file with all its values (EnvironmentFile= may repeat)."""
    values: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def worker_groups() -> list[str]:
    return sorted(d["metadata"]["labels"]["kirim/group"] for n, d in of_kind("Deployment").items()
                  if n.startswith("kirim-worker-"))


def test_every_environment_file_a_unit_reads_ships_as_an_example() -> None:
    for unit in sorted(SYSTEMD.glob("*.service")):
        for name in unit_values(unit).get("EnvironmentFile", []):
            path = Path(name.lstrip("-"))
            assert path.parent == Path("/etc/kirim"), f"{unit.name}: {name}"
            instances = worker_groups() if "%i" in path.name else [""]
            for group in instances:
                file = path.name.replace("%i", group)
                shipped = [SYSTEMD / f"{file}.example", SYSTEMD / file]
                assert any(p.exists() for p in shipped), f"{unit.name} reads {file}: no example"
    assert "FLOWER_BASIC_AUTH" in env_file(SYSTEMD / "flower.env.example")


SANDBOX = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
    "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
    "SystemCallFilter": "@system-service", "SystemCallArchitectures": "native",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet": "",
}
# The liveness check restarts a unit through systemd's Unix socket, as root: no IP, and the
# one capability systemd asks of a caller that restarts a unit.
HEALTH_SANDBOX = SANDBOX | {"RestrictAddressFamilies": "AF_UNIX",
                            "CapabilityBoundingSet": "CAP_SYS_ADMIN", "PrivateNetwork": "yes"}


@pytest.mark.parametrize("unit", sorted(p.name for p in SYSTEMD.glob("*.service")))
def test_systemd_units_are_sandboxed(unit: str) -> None:
    values = unit_values(SYSTEMD / unit)
    wanted = HEALTH_SANDBOX if unit.startswith("kirim-worker-health@") else SANDBOX
    for key, value in wanted.items():
        assert value in values.get(key, []), f"{unit}: {key}={value} missing"
    if unit != "kirim-worker-health@.service":
        assert values["User"] == ["kirim"], unit
    writable = [Path(p.lstrip("-")) for v in values.get("ReadWritePaths", []) for p in v.split()]
    for pair in " ".join(values.get("Environment", [])).split():
        key, _, value = pair.partition("=")
        if key == "KIRIM_HEARTBEAT_FILE":
            assert any(Path(value).parent == p for p in writable), f"{unit}: {value} not writable"
            assert f"/run/{values['RuntimeDirectory'][0]}" == str(Path(value).parent)


# Variables compose must not start without: each use is ${VAR:?message}, never a default.
COMPOSE_REQUIRED = {"REDIS_PASSWORD", "KIRIM_NUSASMS_URL", "KIRIM_NUSASMS_USER",
                    "KIRIM_NUSASMS_PASSWORD", "KIRIM_HASH_KEY", "FLOWER_PASSWORD"}


def test_compose_required_variables_fail_loudly() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    body = "\n".join(line.split(" #")[0] for line in text.splitlines() if not line.startswith("#"))
    uses = re.findall(r"\$\{(\w+)(:?[-?])?([^}]*)\}", body)
    seen = set()
    for name, operator, rest in uses:
        if name in COMPOSE_REQUIRED:
            assert operator == ":?" and rest.strip(), f"${{{name}}} must be ${{{name}:?message}}"
            seen.add(name)
            assert name in header, f"{name} is required but the header does not say so"
        elif operator == ":-":
            # An optional setting defaults to empty (kirim's default), never to a host or secret.
            assert rest in {"", "admin"}, f"${{{name}:-{rest}}} runs quietly against a guess"
    assert seen == COMPOSE_REQUIRED
    assert "sandbox:8099" not in body.replace("(http://sandbox:8099 for the sandbox profile)", "")


def exported_metric_names() -> set[str]:
    """Every sample name kirim's processes can expose (counters as *_total, histograms…)."""
    from prometheus_client import REGISTRY
    from redis import Redis

    import producer.api.metrics  # noqa: F401 - registers the API's metrics
    import worker.callbacks  # noqa: F401
    import worker.metrics as wm
    from producer.core.backlog import BacklogCollector
    from producer.core.keys import Keys

    dead = Redis(port=1, socket_connect_timeout=0.1)
    collectors: list[Any] = [REGISTRY, BacklogCollector(dead, Keys("kirim"), Queues.ALL)]
    if hasattr(wm, "CreditsCollector"):
        collectors.append(wm.CreditsCollector(dead, Keys("kirim")))
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"],
                "gauge": [""], "info": ["_info"], "summary": ["_sum", "_count", ""]}
    return {family.name + suffix for collector in collectors for family in collector.collect()
            for suffix in suffixes.get(family.type, [""])}


def test_prometheus_rules_name_metrics_kirim_exports() -> None:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/kirim-rules.yml").read_text())
    exported = exported_metric_names()
    alerts = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            alerts.add(rule["alert"])
            for name in re.findall(r"\bkirim_[a-z_]+", rule["expr"]):
                assert name in exported, f"{rule['alert']}: {name} is not a kirim metric"
    assert {"KirimOtpQueueStale", "KirimUnknownMessages", "KirimDeadLettersHigh",
            "KirimProviderCapReached", "KirimAccountPaused", "KirimCreditsLow",
            "KirimWorkerDown"} <= alerts
    operations = (ROOT / "docs/operations.md").read_text()
    assert "deploy/prometheus/kirim-rules.yml" in operations
