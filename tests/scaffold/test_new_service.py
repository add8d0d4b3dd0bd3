"""`make new-service`: bad names are refused, and a scaffolded service works in a copy."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "new_service.py"
EXCLUDED = (".venv", "data", "build", ".git")


def refuse(name: str, tmp_path: Path) -> str:
    """Scaffold `name` into a bare copy; return stderr, checking that nothing was written."""
    (tmp_path / "services").mkdir()
    (tmp_path / "protos" / "paynow" / "ledgers").mkdir(parents=True)
    shutil.copy(ROOT / "services" / "registry.toml", tmp_path / "services" / "registry.toml")
    before = sorted(tmp_path.rglob("*"))
    result = subprocess.run(
        [sys.executable, str(SCRIPT), name, "--root", str(tmp_path), "--no-build"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert sorted(tmp_path.rglob("*")) == before
    return result.stderr


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("Payouts", "lowercase identifier"),
        ("1payouts", "lowercase identifier"),
        ("pay-outs", "lowercase identifier"),
        ("p" * 21, "at most 20 characters"),
        ("class", "Python keyword"),
        ("json", "standard-library module"),
        ("test", "standard-library module"),
        ("account", "already in the registry"),
        ("ledgers", "proto package directory"),
        ("framework", "reserved"),
        ("edge", "reserved"),
        ("api", "reserved"),
    ],
)
def test_a_bad_name_is_refused_with_its_rule_and_nothing_written(
    name: str, rule: str, tmp_path: Path
) -> None:
    """Each broken rule is named in the message, before any file is written."""
    assert rule in refuse(name, tmp_path)


def copy_repository(target: Path) -> None:
    """Tracked and untracked-but-not-ignored files, without the venv, data and build."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for relative in listed:
        source = ROOT / relative
        if relative.split("/")[0] in EXCLUDED or not source.is_file():
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / relative)


def run(command: list[str], cwd: Path) -> None:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")
    }
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, check=False, timeout=600, env=environ
    )
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.e2e
def test_a_scaffolded_service_passes_lint_gen_check_and_its_own_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a copy with its own venv: scaffold, then gen-check, lint and the new tests pass."""
    # uv from PATH, or the private copy the Makefile installs on a machine without one.
    uv = shutil.which("uv") or shutil.which("uv", path=str(ROOT / "build" / "uv" / "bin"))
    if uv is None:
        if os.environ.get("CI") == "true":
            pytest.fail("uv is neither on PATH nor in build/uv; CI=true requires it")
        pytest.skip("uv is not on PATH (run `make setup` to install build/uv)")
    # The copy's Makefile looks for uv on PATH too.
    monkeypatch.setenv("PATH", f"{Path(uv).parent}{os.pathsep}{os.environ['PATH']}")
    repo = tmp_path / "repo"
    copy_repository(repo)
    name = "payouts_" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))
    run([uv, "venv", "--quiet"], repo)
    run([uv, "sync", "--frozen", "--quiet"], repo)
    run(["make", "new-service", f"NAME={name}"], repo)
    run(["make", "gen-check"], repo)
    run(["make", "lint"], repo)
    run(
        [
            ".venv/bin/python",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"tests/unit/{name}",
            f"tests/integration/{name}",
            # The contract suites find the new service by themselves: its validation
            # examples, its descriptor, and its provider examples run with no edit to them.
            "tests/contracts/test_validation_rules.py",
            "tests/contracts/test_descriptors.py",
            "tests/contracts/test_provider_examples.py",
        ],
        repo,
    )
