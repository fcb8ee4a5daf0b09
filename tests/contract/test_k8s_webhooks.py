"""The manifests receive Xero's webhooks where the poster listens for them: the configured address
is the container's `webhooks` port, the Service exposes it, only the labelled Ingress controller
may reach it, and the key comes from a Secret (a poster with an address and no key refuses to
start)."""

from __future__ import annotations

from tests.contract.k8s_render import Manifest, named, of_kind, selects
from tests.contract.test_k8s_manifests import kubectl, manifests, overlay, rendered  # noqa: F401 - fixtures

POSTER = {"app.kubernetes.io/name": "xerolink-poster"}


def test_the_webhook_port_is_configured_exposed_and_reached_only_through_the_ingress(
    manifests: list[Manifest],  # noqa: F811 - the fixture
) -> None:
    data = named(manifests, "ConfigMap", "xerolink-config")["data"]
    poster = named(manifests, "Deployment", "xerolink-poster")
    (container,) = poster["spec"]["template"]["spec"]["containers"]
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == "webhooks"]
    assert data["XEROLINK_WEBHOOK_ADDRESS"] == f"0.0.0.0:{port}"
    assert data["XEROLINK_WEBHOOK_PATH"].startswith("/")
    service = named(manifests, "Service", "xerolink-poster")
    assert {"name": "webhooks", "port": port, "targetPort": "webhooks"}.items() <= next(
        p for p in service["spec"]["ports"] if p["name"] == "webhooks"
    ).items()
    key = next(e for e in container["env"] if e["name"] == "XEROLINK_WEBHOOK_KEY")
    secret = key["valueFrom"]["secretKeyRef"]  # dev's generated Secret names carry a hash suffix
    assert secret["key"] == "webhook-key" and secret["name"].startswith("xerolink-xero")
    rules = [
        rule
        for policy in of_kind(manifests, "NetworkPolicy")
        if selects(policy["spec"]["podSelector"], POSTER)
        for rule in policy["spec"].get("ingress", [])
        if port in {p["port"] for p in rule["ports"]}
    ]
    assert rules
    for rule in rules:
        assert [p["port"] for p in rule["ports"]] == [port]
        assert [peer["podSelector"]["matchLabels"] for peer in rule["from"]] == [
            {"xerolink.io/webhook-ingress": "true"}
        ]
