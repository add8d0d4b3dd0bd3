"""Paths and tools of the deploy checks: everything runs offline, from the locked venv."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
REGISTRY = ROOT / "services" / "registry.toml"
GENERATOR = ROOT / "scripts" / "deploy_manifests.py"
# Console scripts and binaries of dev dependencies (hadolint, kubectl) sit beside python.
VENV_BIN = Path(sys.executable).parent
