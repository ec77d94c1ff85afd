"""Every manifest in deploy/kubernetes/ validates against the Kubernetes schemas, offline and
strict (unknown fields are errors), with the newest Kubernetes version kubernetes-validate ships.

CI runs the same check as a command: see the README section "Kubernetes".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes_validate import utils as kv  # pinned in requirements-test.txt: missing is a failure

from tests.deploy.manifests import DIRECTORY, documents, manifest_files


def test_the_folder_is_plain_manifests() -> None:
    names = {path.name for path in DIRECTORY.iterdir()}
    assert {"deployment.yaml", "service.yaml", "configmap-config.yaml", "configmap-identifiers.yaml"} <= names
    assert not names & {"kustomization.yaml", "kustomization.yml", "Chart.yaml"}, "no kustomize or helm here"
    assert all(name.endswith(".yaml") for name in names), names


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_manifest_is_one_strictly_valid_resource(path: Path) -> None:
    resources = documents(path)
    assert len(resources) == 1, f"{path.name}: one resource per file"
    version = kv.latest_version()
    try:
        kv.validate(resources[0], version, strict=True)
    except kv.SchemaNotFoundError as exc:  # the CLI only warns about these; a typo'd kind must fail
        pytest.fail(exc.message)
    except kv.ValidationError as exc:
        pytest.fail(f"{path.name}: {'.'.join(map(str, exc.path))}: {exc.message} (Kubernetes {exc.version})")


def test_the_ci_command_passes() -> None:
    """The exact command CI runs (through this interpreter, so the venv's package is used)."""
    version = kv.latest_version()
    files = [str(p) for p in manifest_files()]
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version, *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == len(files), result.stdout
    assert "WARN" not in result.stdout, result.stdout
