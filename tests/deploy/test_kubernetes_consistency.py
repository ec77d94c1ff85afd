"""The manifests agree with each other, with the image and with Passthru itself: probes hit the
admin port the config opens, mounts are directories where the config points, the grace period
covers the drain, and the ConfigMaps' config and identifier load as the pod would load them."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest

from passthru.bootstrap import load_with_identifiers
from passthru.server.service import DRAIN_SECONDS
from tests.deploy.manifests import REPO, configmap, resource

CONFIG_PATH = "/etc/passthru/config/config.yaml"


def container() -> dict:
    (only,) = resource("Deployment")["spec"]["template"]["spec"]["containers"]
    return only


def pod_spec() -> dict:
    return resource("Deployment")["spec"]["template"]["spec"]


def publish_like_kubelet(directory: Path, files: dict[str, str]) -> None:
    """A ConfigMap volume as the kubelet writes it: a timestamped directory, ``..data`` pointing
    at it, and one symlink per key through ``..data``."""
    directory.mkdir(parents=True)
    version = directory / "..2026_01_01_00_00_00.000000000"
    version.mkdir()
    for name, text in files.items():
        (version / name).write_text(text)
    os.symlink(version.name, directory / "..data")
    for name in files:
        os.symlink(f"..data/{name}", directory / name)


@pytest.fixture
def cluster_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve ``*.svc.cluster.local`` as cluster DNS would (to a ClusterIP-like address)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(host, str) and host.endswith(".svc.cluster.local"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.96.0.10", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_configmaps_load_as_the_pod_loads_them(tmp_path: Path, cluster_dns: None) -> None:
    etc = tmp_path / "etc" / "passthru"
    publish_like_kubelet(etc / "config", configmap("passthru-config"))
    publish_like_kubelet(etc / "identifiers", configmap("passthru-identifiers"))
    config, user = load_with_identifiers(etc / "config" / "config.yaml")
    assert user.names() == {"greeting"}, "the identifiers ConfigMap is found through identifiers_dir"
    assert {route.protocol for route in config.routes} == {"tls", "ssh", "greeting"}
    (listener,) = config.listeners
    assert (listener.address.host, listener.address.port, listener.proxy_protocol) == ("0.0.0.0", 8443, "accept")
    assert [str(n) for n in listener.trusted_proxies] == ["10.0.0.0/8"]
    assert config.admin is not None and (config.admin.host, config.admin.port) == ("0.0.0.0", 9901)
    assert config.workers == 2
    assert "workers: auto" not in configmap("passthru-config")["config.yaml"], "auto counts the node's CPUs"


def test_the_identifier_configmap_is_the_repository_file() -> None:
    assert configmap("passthru-identifiers")["greeting.py"] == (REPO / "identifiers" / "greeting.py").read_text()


def test_ports_and_probes_match_the_config(cluster_dns: None, tmp_path: Path) -> None:
    text = configmap("passthru-config")["config.yaml"]
    admin_port = int(re.search(r"^admin: 0\.0\.0\.0:(\d+)$", text, re.M).group(1))  # type: ignore[union-attr]
    listen_port = int(re.search(r"address: 0\.0\.0\.0:(\d+)", text).group(1))  # type: ignore[union-attr]
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    assert ports == {"passthru": listen_port, "admin": admin_port}
    assert container()["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert container()["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    service = resource("Service")["spec"]
    assert service["type"] == "LoadBalancer"
    assert [p["targetPort"] for p in service["ports"]] == ["passthru"], "the admin port is never exposed"


def test_configmaps_are_mounted_as_directories_where_the_config_points() -> None:
    mounts = {m["name"]: m for m in container()["volumeMounts"]}
    assert all("subPath" not in m and "subPathExpr" not in m for m in mounts.values()), "subPath never updates"
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "passthru-config"
    assert volumes["identifiers"]["configMap"]["name"] == "passthru-identifiers"
    assert mounts["config"]["mountPath"] == str(Path(CONFIG_PATH).parent)
    assert container()["args"] == ["run", "-c", CONFIG_PATH]
    identifiers_dir = (Path(CONFIG_PATH).parent / "../identifiers").resolve()
    assert mounts["identifiers"]["mountPath"] == str(identifiers_dir)


def test_graceful_termination_covers_the_prestop_sleep_and_the_drain() -> None:
    sleep_command = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep_command[0] == "sleep"
    grace = pod_spec()["terminationGracePeriodSeconds"]
    assert grace > int(sleep_command[1]) + DRAIN_SECONDS + 5


def test_the_pod_runs_as_the_image_user_without_privileges() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    entrypoint = re.search(r"^ENTRYPOINT \[\"(\w+)\"\]", dockerfile, re.M)
    user = re.search(r"^USER (\d+):(\d+)", dockerfile, re.M)
    assert entrypoint and entrypoint.group(1) == "passthru", "args assume the image's ENTRYPOINT is passthru"
    assert user, "the Dockerfile names a numeric USER"
    security = pod_spec()["securityContext"]
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["runAsGroup"]) == (int(user.group(1)), int(user.group(2)))
    container_security = container()["securityContext"]
    assert container_security["allowPrivilegeEscalation"] is False
    assert container_security["readOnlyRootFilesystem"] is True
    assert any(m["mountPath"] == "/tmp" for m in container()["volumeMounts"]), "metrics files need a writable /tmp"


def test_several_replicas_and_a_disruption_budget() -> None:
    deployment = resource("Deployment")["spec"]
    assert deployment["replicas"] >= 2
    assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = deployment["template"]["metadata"]["labels"]
    assert resource("Service")["spec"]["selector"] == labels
    assert resource("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == labels
