"""Read the Kubernetes manifests in deploy/kubernetes/ (one resource per file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
DIRECTORY = REPO / "deploy" / "kubernetes"


def manifest_files() -> list[Path]:
    return sorted(DIRECTORY.glob("*.yaml"))


def documents(path: Path) -> list[Any]:
    return [doc for doc in YAML(typ="safe").load_all(path.read_text()) if doc is not None]


def resource(kind: str) -> dict[str, Any]:
    """The one resource of ``kind`` (there must be exactly one)."""
    found = [doc for path in manifest_files() for doc in documents(path) if doc.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def configmap(name: str) -> dict[str, str]:
    found = [doc for path in manifest_files() for doc in documents(path) if doc["metadata"]["name"] == name]
    assert len(found) == 1 and found[0]["kind"] == "ConfigMap", name
    return found[0]["data"]
