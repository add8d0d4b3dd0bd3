"""deploy/Dockerfile and its build context, checked statically with hadolint."""

from __future__ import annotations

import subprocess

from .conftest import DEPLOY, ROOT, VENV_BIN


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    """hadolint reports no finding at any severity, style included."""
    result = subprocess.run(
        [str(VENV_BIN / "hadolint"), "--failure-threshold", "style", str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_hadolint_would_catch_a_root_final_stage() -> None:
    """The check bites: an image that ends as root is reported (DL3002)."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8") + "USER root\n"
    result = subprocess.run(
        [str(VENV_BIN / "hadolint"), "-"], input=text, capture_output=True, text=True, check=False
    )
    assert "DL3002" in result.stdout


def test_build_context_leaves_out_local_data_and_the_venv() -> None:
    """.dockerignore is an allowlist, so data/, .venv/ and .git/ never reach a layer."""
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*"
    assert not {"!data/", "!.venv/", "!.git/", "!tests/"} & set(rules)


def test_final_stage_runs_as_the_numeric_non_root_user() -> None:
    """The last USER is numeric, so Kubernetes' runAsNonRoot can verify it."""
    users = [
        line.split()[1]
        for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines()
        if line.startswith("USER ")
    ]
    assert users[-1] == "10001:10001"
