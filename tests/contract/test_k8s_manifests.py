"""Deployment artefacts, checked offline: each kustomize overlay renders, validates strictly against
the Kubernetes schemas (kubernetes-validate, bundled), and keeps the invariants operations rely on.
The Dockerfile cannot be built without an engine; what can be read from it is checked here."""

from __future__ import annotations

import base64
import copy
import importlib
import json
import re
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
from xerolink_common.listening import ALLOW_UNAUTHENTICATED, is_loopback
from xerolink_common.security import CallerRegistry

from tests.contract.k8s_render import (
    OVERLAYS,
    ROOT,
    Manifest,
    RendererMissing,
    containers,
    find_kubectl,
    named,
    of_kind,
    render,
    selects,
    workloads,
)

# The oldest Kubernetes the manifests claim to run on (native gRPC probes are GA since 1.27)
# and the newest schema kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
MAPPER = {"app.kubernetes.io/name": "xerolink-mapper"}
POSTER = {"app.kubernetes.io/name": "xerolink-poster"}
POSTGRES = {"app.kubernetes.io/name": "xerolink-postgres"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS: dict[str, str] = PYPROJECT["project"]["scripts"]


@pytest.fixture(scope="module")
def kubectl() -> str:
    try:
        return find_kubectl()
    except RendererMissing as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def rendered(kubectl: str) -> dict[str, list[Manifest]]:
    return {overlay: render(kubectl, overlay) for overlay in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def manifests(rendered: dict[str, list[Manifest]], overlay: str) -> list[Manifest]:
    return rendered[overlay]


def settings_config(manifests: list[Manifest]) -> Manifest:
    """The ConfigMap of settings both services read (envFrom)."""
    return named(manifests, "ConfigMap", "xerolink-config")


def schema_errors(manifest: Manifest, version: str) -> str | None:
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{manifest['kind']}/{manifest['metadata'].get('name')}: {exc.message} at {list(exc.path)}"
    return None


# --- rendering and schemas ---------------------------------------------------------------------


def test_each_overlay_renders_every_component(manifests: list[Manifest]) -> None:
    kinds = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    for expected in [
        ("Deployment", "xerolink-mapper"),
        ("Service", "xerolink-mapper"),
        ("HorizontalPodAutoscaler", "xerolink-mapper"),
        ("Deployment", "xerolink-poster"),
        ("Service", "xerolink-poster"),
        ("PodDisruptionBudget", "xerolink-poster"),
        ("NetworkPolicy", "xerolink-default-deny"),
    ]:
        assert expected in kinds, f"{expected} missing from the rendered overlay"
    assert of_kind(manifests, "ConfigMap"), "no ConfigMap rendered"
    namespaces = {m["metadata"].get("namespace") for m in manifests if m["kind"] != "Namespace"}
    assert len(namespaces) == 1 and None not in namespaces, f"every object needs the overlay's namespace: {namespaces}"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_manifests_validate_strictly_against_kubernetes_schemas(
    manifests: list[Manifest], version: str
) -> None:
    errors = [e for e in (schema_errors(m, version) for m in manifests) if e]
    assert not errors, "\n".join(errors)


def test_strict_validation_rejects_a_misspelt_field(rendered: dict[str, list[Manifest]]) -> None:
    deployment = copy.deepcopy(named(rendered["prod"], "Deployment", "xerolink-poster"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["servce"] = "typo"
    assert schema_errors(deployment, KUBERNETES_VERSIONS[0]) is not None


# --- container hardening -----------------------------------------------------------------------


def test_every_container_is_non_root_read_only_and_without_capabilities(manifests: list[Manifest]) -> None:
    checked = 0
    for workload in workloads(manifests):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", workload["metadata"]["name"]
        assert pod.get("automountServiceAccountToken") is False, workload["metadata"]["name"]
        for _, container in containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            sc = {**pod["securityContext"], **container.get("securityContext", {})}
            assert sc.get("runAsNonRoot") is True, where
            assert sc.get("runAsUser", 0) != 0, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("privileged", False) is False, where
            assert sc["capabilities"].get("drop") == ["ALL"] and not sc["capabilities"].get("add"), where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            checked += 1
    assert checked >= 2


def test_every_container_has_requests_limits_probes_and_a_writable_tmp(manifests: list[Manifest]) -> None:
    for workload in workloads(manifests):
        for pod, container in containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"].get(bound, {})), f"{where}: {bound}"
            assert "readinessProbe" in container and "livenessProbe" in container, where
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1, f"{where}: /tmp must be mounted (the root filesystem is read-only)"
            volume = next(v for v in pod["volumes"] if v["name"] == tmp[0]["name"])
            assert "emptyDir" in volume, f"{where}: /tmp must be an emptyDir"


def test_services_use_native_grpc_probes_on_their_own_port_and_service_name(manifests: list[Manifest]) -> None:
    # The names the servers register with the health service, from the generated descriptors.
    mapper_pb2 = importlib.import_module("xerolink.mapper.v1.mapper_service_pb2")
    poster_pb2 = importlib.import_module("xerolink.poster.v1.poster_service_pb2")
    expected = {
        "xerolink-mapper": mapper_pb2.DESCRIPTOR.services_by_name["MapperService"].full_name,
        "xerolink-poster": poster_pb2.DESCRIPTOR.services_by_name["PosterService"].full_name,
    }
    for name, service in expected.items():
        (container,) = named(manifests, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == "grpc"]
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert container[probe]["grpc"] == {"port": port, "service": service}, f"{name} {probe}"


def test_containers_run_console_scripts_the_project_declares(manifests: list[Manifest]) -> None:
    commands = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["command"]
        for d in of_kind(manifests, "Deployment")
    }
    assert commands["xerolink-mapper"] == ["xerolink-mapper"]
    assert commands["xerolink-poster"] == ["xerolink-poster"]
    assert {c[0] for c in commands.values()} <= set(SCRIPTS)


def test_configured_addresses_match_the_container_ports_and_the_mapper_service(manifests: list[Manifest]) -> None:
    config = settings_config(manifests)
    data = config["data"]
    ports = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        for d in of_kind(manifests, "Deployment")
    }
    assert data["XEROLINK_MAPPER_ADDRESS"] == f"0.0.0.0:{ports['xerolink-mapper']}"
    assert data["XEROLINK_POSTER_ADDRESS"] == f"0.0.0.0:{ports['xerolink-poster']}"
    service = named(manifests, "Service", "xerolink-mapper")
    assert data["XEROLINK_MAPPER_TARGET"] == f"{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    for workload in of_kind(manifests, "Deployment"):
        refs = workload["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert refs == [{"configMapRef": {"name": config["metadata"]["name"]}}]


# --- scaling -----------------------------------------------------------------------------------


def test_poster_runs_at_least_two_replicas_and_a_drain_keeps_one(manifests: list[Manifest]) -> None:
    poster = named(manifests, "Deployment", "xerolink-poster")
    replicas = poster["spec"]["replicas"]
    assert replicas >= 2
    (pdb,) = of_kind(manifests, "PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"], poster["spec"]["template"]["metadata"]["labels"])
    # At least one poster stays up, and a drain can still evict one (minAvailable < replicas).
    assert 1 <= pdb["spec"]["minAvailable"] < replicas


def test_mapper_scales_horizontally_on_cpu(manifests: list[Manifest]) -> None:
    hpa = named(manifests, "HorizontalPodAutoscaler", "xerolink-mapper")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "xerolink-mapper"}
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    # The HPA owns the count: a replicas field in the Deployment would reset it on every apply.
    assert "replicas" not in named(manifests, "Deployment", "xerolink-mapper")["spec"]


def test_prod_runs_more_replicas_and_stricter_resources_than_dev(rendered: dict[str, list[Manifest]]) -> None:
    def replicas(overlay: str) -> tuple[int, int, int]:
        poster = named(rendered[overlay], "Deployment", "xerolink-poster")
        hpa = named(rendered[overlay], "HorizontalPodAutoscaler", "xerolink-mapper")["spec"]
        return poster["spec"]["replicas"], hpa["minReplicas"], hpa["maxReplicas"]

    assert all(p > d for p, d in zip(replicas("prod"), replicas("dev"), strict=True))
    for name in ("xerolink-mapper", "xerolink-poster"):
        prod = named(rendered["prod"], "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        dev = named(rendered["dev"], "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        # Guaranteed QoS: requests equal limits, no more than dev may burst to.
        assert prod["resources"]["requests"] == prod["resources"]["limits"], name
        assert quantity(prod["resources"]["limits"]["memory"]) <= quantity(dev["resources"]["limits"]["memory"]), name
        assert quantity(prod["resources"]["limits"]["cpu"]) <= quantity(dev["resources"]["limits"]["cpu"]), name


def quantity(value: str) -> float:
    """A Kubernetes quantity as a number (the suffixes used here: m, Ki, Mi, Gi)."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


# --- images ------------------------------------------------------------------------------------


def image_reference(image: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of an image reference; a registry port is not mistaken for a tag."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    if tag:
        name = name[: -len(tag) - 1]
    return name, tag, digest or None


def test_every_image_is_pinned_by_tag_or_digest(manifests: list[Manifest]) -> None:
    for workload in workloads(manifests):
        for _, container in containers(workload):
            _, tag, digest = image_reference(container["image"])
            assert digest or (tag and tag != "latest"), f"{container['image']} is not pinned"


def test_prod_runs_the_released_version_of_the_image(rendered: dict[str, list[Manifest]]) -> None:
    images = {
        c["image"] for w in workloads(rendered["prod"]) for _, c in containers(w) if c["name"] in ("mapper", "poster")
    }
    assert len(images) == 1, f"mapper and poster must run one image: {images}"
    _, tag, digest = image_reference(images.pop())
    assert digest is not None or tag == PYPROJECT["project"]["version"]
    if digest is not None:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)


def test_image_reference_parsing() -> None:
    assert image_reference("registry:5000/x/y:1.2") == ("registry:5000/x/y", "1.2", None)
    assert image_reference("registry:5000/x/y") == ("registry:5000/x/y", None, None)
    assert image_reference("y@sha256:" + "a" * 64) == ("y", None, "sha256:" + "a" * 64)


# --- secrets and the database ------------------------------------------------------------------


def secret_refs(manifests: list[Manifest]) -> set[tuple[str, str]]:
    refs = set()
    for workload in workloads(manifests):
        for _, container in containers(workload):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
            assert not any("secretRef" in e for e in container.get("envFrom", [])), "reference keys one by one"
    return refs


def test_prod_holds_no_secret_and_references_the_documented_ones(rendered: dict[str, list[Manifest]]) -> None:
    assert not of_kind(rendered["prod"], "Secret"), "prod must reference Secrets the operator creates"
    refs = secret_refs(rendered["prod"])
    assert {name for name, _ in refs} == {"xerolink-database", "xerolink-xero", "xerolink-poster-caller"}
    guide = (ROOT / "docs" / "deployment.md").read_text()
    for name, key in refs:
        assert re.search(rf"{name}\b.*\b{key}\b", guide), f"docs/deployment.md must tell operators about {name}/{key}"


def test_credentials_reach_the_poster_only_through_secret_references(manifests: list[Manifest]) -> None:
    poster = named(manifests, "Deployment", "xerolink-poster")
    env = {e["name"]: e for e in poster["spec"]["template"]["spec"]["containers"][0]["env"]}
    for name in (
        "XEROLINK_DATABASE_URL",
        "XEROLINK_XERO_CLIENT_ID",
        "XEROLINK_XERO_CLIENT_SECRET",
        "XEROLINK_TOKEN_ENCRYPTION_KEY",
        "XEROLINK_CALLER_TOKEN",
    ):
        assert "secretKeyRef" in env[name]["valueFrom"], name
    config = settings_config(manifests)
    assert not [k for k in config["data"] if re.search("SECRET|PASSWORD|TOKEN|DATABASE_URL|KEY", k)]
    mapper = named(manifests, "Deployment", "xerolink-mapper")
    assert not secret_refs([mapper]), "the mapper needs no credentials"


def callers_file(deployment: Manifest) -> tuple[str, str]:
    """(ConfigMap name, key) of the file XEROLINK_CALLERS_FILE names in the service's container,
    asserting that the path is a read-only mount of that ConfigMap key."""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container.get("env", [])}
    assert "XEROLINK_CALLERS_FILE" in env, "without a callers file the service authenticates nobody"
    path = env["XEROLINK_CALLERS_FILE"]["value"]
    (mount,) = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/")]
    assert mount.get("readOnly") is True and "subPath" not in mount, mount
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert "configMap" in volume, "the callers file holds only hashes: a ConfigMap, not a credential"
    relative = path[len(mount["mountPath"].rstrip("/")) + 1 :]
    (item,) = [i for i in volume["configMap"]["items"] if i["path"] == relative]
    return volume["configMap"]["name"], item["key"]


def test_the_mapper_authenticates_its_callers_from_a_mounted_callers_file_and_serves_only_the_poster(
    manifests: list[Manifest],
) -> None:
    mapper = named(manifests, "Deployment", "xerolink-mapper")
    callers_file(mapper)
    assert settings_config(manifests)["data"]["XEROLINK_MAPPER_ALLOWED_CALLERS"] == "poster"
    # In the shared settings the poster would read it too, and refuse to start without the file.
    assert "XEROLINK_CALLERS_FILE" not in settings_config(manifests)["data"]
    poster = named(manifests, "Deployment", "xerolink-poster")
    env = {e["name"]: e for e in poster["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["XEROLINK_CALLER_TOKEN"]["valueFrom"]["secretKeyRef"]["name"].startswith("xerolink-poster-caller")


def test_pods_listen_beyond_loopback_only_with_a_callers_file_and_never_without_authentication(
    manifests: list[Manifest],
) -> None:
    # The servers default to loopback, which a Service cannot reach: the address is set
    # explicitly, and start-up beyond loopback needs a callers file (or the opt-out, never here).
    data = settings_config(manifests)["data"]
    assert ALLOW_UNAUTHENTICATED not in data
    for service, variable in (
        ("xerolink-mapper", "XEROLINK_MAPPER_ADDRESS"),
        ("xerolink-poster", "XEROLINK_POSTER_ADDRESS"),
    ):
        assert not is_loopback(data[variable]), f"{variable}: a Service cannot reach a pod on loopback"
        deployment = named(manifests, "Deployment", service)
        callers_file(deployment)
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert ALLOW_UNAUTHENTICATED not in {e["name"] for e in container.get("env", [])}


def dev_callers(dev: list[Manifest], service: str, workdir: Path) -> CallerRegistry:
    """The service's rendered callers file, read as the service reads its mounted file, after
    checking that it holds hashes only."""
    name, key = callers_file(named(dev, "Deployment", service))
    text = named(dev, "ConfigMap", name)["data"][key]
    for entry in json.loads(text)["callers"]:
        assert set(entry) <= {"name", "token_sha256", "mtls_subject", "connections"}, "hashes only, no token"
    (workdir / key).write_text(text)
    return CallerRegistry.from_file(workdir / key)


def test_dev_lets_exactly_the_poster_s_token_through_the_mapper(
    rendered: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    dev = rendered["dev"]
    registry = dev_callers(dev, "xerolink-mapper", tmp_path)
    poster = named(dev, "Deployment", "xerolink-poster")
    env = {e["name"]: e for e in poster["spec"]["template"]["spec"]["containers"][0]["env"]}
    ref = env["XEROLINK_CALLER_TOKEN"]["valueFrom"]["secretKeyRef"]
    token = base64.b64decode(named(dev, "Secret", ref["name"])["data"][ref["key"]]).decode()
    caller = registry.authenticate([("authorization", f"Bearer {token}")], {})
    assert caller is not None and caller.name == "poster"
    assert registry.authenticate([("authorization", "Bearer dev-only-someone-else")], {}) is None


def test_prod_expects_the_operator_s_callers_files(rendered: dict[str, list[Manifest]]) -> None:
    guide = (ROOT / "docs" / "deployment.md").read_text()
    for service in ("xerolink-mapper", "xerolink-poster"):
        name, key = callers_file(named(rendered["prod"], "Deployment", service))
        assert not [m for m in of_kind(rendered["prod"], "ConfigMap") if m["metadata"]["name"] == name]
        told = re.search(rf"{name}\b.*\b{re.escape(key)}", guide)
        assert told, f"docs/deployment.md must tell operators about {name}"


def test_the_poster_authenticates_its_callers_and_dev_lets_the_operator_s_token_reach_every_connection(
    rendered: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    registry = dev_callers(rendered["dev"], "xerolink-poster", tmp_path)
    operator = registry.authenticate([("authorization", "Bearer dev-only-operator-token")], {})
    assert operator is not None and operator.name == "operator" and operator.may_use("any-firm")
    assert registry.authenticate([("authorization", "Bearer dev-only-poster-caller-token")], {}) is None


def test_dev_secrets_are_generated_and_visibly_fake(rendered: dict[str, list[Manifest]]) -> None:
    secrets = of_kind(rendered["dev"], "Secret")
    generated = {s["metadata"]["name"].rsplit("-", 1)[0] for s in secrets}
    assert {name for name, _ in secret_refs(rendered["dev"])} == {s["metadata"]["name"] for s in secrets}, (
        "every reference must point at a generated Secret"
    )
    assert {"xerolink-database", "xerolink-xero"} <= generated
    for secret in secrets:
        for key, value in secret["data"].items():
            plain = base64.b64decode(value)
            # A Fernet-style key is base64 itself: look one layer deeper.
            if b"dev-only" not in plain:
                plain = base64.urlsafe_b64decode(plain)
            assert b"dev-only" in plain, f"{secret['metadata']['name']}/{key} does not look fake"


def test_postgresql_runs_in_the_cluster_only_in_dev(rendered: dict[str, list[Manifest]]) -> None:
    (postgres,) = of_kind(rendered["dev"], "StatefulSet")
    assert selects(postgres["spec"]["selector"], POSTGRES)
    assert not of_kind(rendered["prod"], "StatefulSet")
    assert not [m for m in rendered["prod"] if "postgres" in m["metadata"]["name"]]


# --- network policy ----------------------------------------------------------------------------


def policies_for(manifests: list[Manifest], labels: dict[str, str]) -> list[Manifest]:
    return [p for p in of_kind(manifests, "NetworkPolicy") if selects(p["spec"]["podSelector"], labels)]


def test_every_pod_is_covered_by_a_default_deny(manifests: list[Manifest]) -> None:
    deny = named(manifests, "NetworkPolicy", "xerolink-default-deny")
    assert deny["spec"]["podSelector"] == {}
    assert sorted(deny["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]


def test_only_the_poster_and_labelled_callers_reach_the_mapper(manifests: list[Manifest]) -> None:
    mapper = named(manifests, "Deployment", "xerolink-mapper")
    labels = mapper["spec"]["template"]["metadata"]["labels"]
    (port,) = [p["containerPort"] for p in mapper["spec"]["template"]["spec"]["containers"][0]["ports"]]
    rules = [r for p in policies_for(manifests, labels) for r in p["spec"].get("ingress", [])]
    assert rules
    for rule in rules:
        assert [p["port"] for p in rule["ports"]] == [port]
        for peer in rule["from"]:
            assert "ipBlock" not in peer
            selector = peer["podSelector"]["matchLabels"]
            if "namespaceSelector" in peer:
                assert selector == {"xerolink.io/mapper-client": "true"}
            else:
                assert selector == POSTER
    egress = [r for p in policies_for(manifests, labels) for r in p["spec"].get("egress", [])]
    assert egress == [], "the mapper opens no connection"


def test_only_the_poster_may_leave_the_cluster_and_only_to_https_and_dns(manifests: list[Manifest]) -> None:
    for policy in of_kind(manifests, "NetworkPolicy"):
        for rule in policy["spec"].get("egress", []):
            ports = {(p.get("protocol", "TCP"), p["port"]) for p in rule.get("ports", [])}
            assert ports, f"{policy['metadata']['name']}: egress without ports"
            if any("ipBlock" in peer for peer in rule["to"]):
                assert policy["spec"]["podSelector"]["matchLabels"] == POSTER, policy["metadata"]["name"]
                assert ports in ({("TCP", 443)}, {("TCP", 5432)}), policy["metadata"]["name"]
    poster_rules = [r for p in policies_for(manifests, POSTER) for r in p["spec"].get("egress", [])]
    reach = {(p.get("protocol", "TCP"), p["port"]) for r in poster_rules for p in r["ports"]}
    assert reach == {("TCP", 50061), ("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 5432)}
    public = [r for r in poster_rules if {p["port"] for p in r["ports"]} == {443}]
    (block,) = [peer["ipBlock"] for r in public for peer in r["to"]]
    assert block["cidr"] == "0.0.0.0/0" and {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= set(block["except"])


def test_dev_database_accepts_only_the_poster(rendered: dict[str, list[Manifest]]) -> None:
    policy = named(rendered["dev"], "NetworkPolicy", "xerolink-postgres")
    deny = named(rendered["dev"], "NetworkPolicy", "xerolink-default-deny")
    assert policies_for(rendered["dev"], POSTGRES) == [deny, policy]
    assert [peer["podSelector"]["matchLabels"] for r in policy["spec"]["ingress"] for peer in r["from"]] == [POSTER]
    assert policy["spec"]["egress"] == []
    database = named(rendered["dev"], "NetworkPolicy", "xerolink-poster-database")
    peers = [peer for r in database["spec"]["egress"] for peer in r["to"]]
    assert peers == [{"podSelector": {"matchLabels": POSTGRES}}]


# --- the container image -----------------------------------------------------------------------

DOCKERFILE = ROOT / "Dockerfile"
BASE_IMAGE = "python:3.11-slim-bookworm"


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        assert stages, "instructions before the first FROM"
        stages[-1].append((instruction.upper(), args.strip()))
    return stages


def copy_sources() -> list[str]:
    """What COPY takes from the build context (not from another stage): all but the destination."""
    sources: list[str] = []
    for stage in dockerfile_stages():
        for instruction, args in stage:
            words = args.split()
            if instruction == "COPY" and not any(w.startswith("--from=") for w in words):
                sources.extend(w for w in words[:-1] if not w.startswith("--"))
    return sources


def test_dockerfile_is_multi_stage_on_the_pinned_base() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    names = set()
    for stage in stages:
        image, *alias = stage[0][1].split()
        assert image == BASE_IMAGE or image in names, f"FROM {image}: use {BASE_IMAGE} (pinned tag)"
        if alias:
            names.add(alias[-1])


def test_final_stage_runs_as_the_manifests_non_root_user_without_build_tools(
    rendered: dict[str, list[Manifest]],
) -> None:
    final = dockerfile_stages()[-1]
    users = [args for instruction, args in final if instruction == "USER"]
    assert users, "the final stage must set USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid (runAsNonRoot checks it)"
    for workload in workloads(rendered["prod"]):
        assert workload["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)
    runs = " ".join(args for instruction, args in final if instruction == "RUN")
    assert not re.search(r"apt-get install|apk add|\bgcc\b|build-essential|pip install", runs), runs


def test_dockerfile_carries_no_secret() -> None:
    for stage in dockerfile_stages():
        for instruction, args in stage:
            if instruction in ("ARG", "ENV"):
                assert not re.search(r"SECRET|PASSWORD|TOKEN|_KEY\b", args, re.IGNORECASE), args
            if instruction in ("COPY", "ADD"):
                assert not re.search(r"\.env\b|\.pem\b|\.key\b", args), args
    # The build context is an allow-list: everything is excluded, then only what COPY needs.
    rules = [r for r in (ROOT / ".dockerignore").read_text().splitlines() if r and not r.startswith("#")]
    assert rules[0] == "**", ".dockerignore must exclude everything by default"
    copied = {source.rstrip("/") for source in copy_sources()}
    assert {r[1:].rstrip("/") for r in rules if r.startswith("!")} == copied


def test_the_image_listens_on_its_exposed_ports_on_every_interface_and_keeps_authentication_on() -> None:
    final = dockerfile_stages()[-1]
    settings = dict(
        word.split("=", 1)
        for instruction, args in final
        if instruction == "ENV"
        for word in args.split()
        if "=" in word
    )
    exposed = {int(p) for instruction, args in final if instruction == "EXPOSE" for p in args.split()}
    addresses = [settings["XEROLINK_MAPPER_ADDRESS"], settings["XEROLINK_POSTER_ADDRESS"]]
    assert all(not is_loopback(a) for a in addresses), "a container is reached through its network interface"
    assert {int(a.rpartition(":")[2]) for a in addresses} == exposed
    assert ALLOW_UNAUTHENTICATED not in settings


def test_dockerfile_commands_are_console_scripts_whose_entry_points_exist() -> None:
    final = dockerfile_stages()[-1]
    (cmd,) = [args for instruction, args in final if instruction == "CMD"]
    assert cmd.startswith("["), "CMD in exec form, so SIGTERM reaches the server"
    program = cmd.strip('[]"').split('"')[0]
    for script in (program, "xerolink-mapper", "xerolink-poster"):
        module, _, attribute = SCRIPTS[script].partition(":")
        assert callable(getattr(importlib.import_module(module), attribute)), SCRIPTS[script]
    for source in copy_sources():
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
