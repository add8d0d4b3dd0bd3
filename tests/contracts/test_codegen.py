"""`make gen` is reproducible and `make gen-check` catches drift, on a copy of the repository."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run_gen(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(repo / "scripts" / "gen_protos.py"), *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _snapshot(tree: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(tree)): p.read_bytes()
        for p in sorted(tree.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The parts of the repository code generation reads and writes, copied."""
    copy = tmp_path / "repo"
    for name in ("protos", "generated", "scripts"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_gen_on_an_unchanged_tree_changes_nothing(repo_copy: Path) -> None:
    """Regenerating from the committed protos reproduces the committed code byte for byte."""
    before = _snapshot(repo_copy / "generated")
    result = _run_gen(repo_copy)
    assert result.returncode == 0, result.stderr
    assert _snapshot(repo_copy / "generated") == before


def test_gen_check_passes_on_a_clean_tree(repo_copy: Path) -> None:
    """gen-check agrees with a tree that `make gen` wrote."""
    result = _run_gen(repo_copy, "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_gen_check_fails_when_a_proto_changes_without_regenerating(repo_copy: Path) -> None:
    """A proto edited but not regenerated makes gen-check fail and name the stale file."""
    proto = repo_copy / "protos/paynow/account/v1/account.proto"
    proto.write_text(
        proto.read_text().replace(
            "  string etag = 11;\n", "  string etag = 11;\n  // New.\n  string nickname = 12;\n"
        )
    )
    result = _run_gen(repo_copy, "--check")
    assert result.returncode == 1
    assert "differs: generated/paynow/account/v1/account_pb2.py" in result.stdout


def test_gen_check_fails_on_a_hand_edit_in_generated(repo_copy: Path) -> None:
    """A hand edit inside generated/ makes gen-check fail."""
    module = repo_copy / "generated/paynow/merchant/v1/payment_pb2.py"
    module.write_text(module.read_text() + "\n# hand edit\n")
    result = _run_gen(repo_copy, "--check")
    assert result.returncode == 1
    assert "differs: generated/paynow/merchant/v1/payment_pb2.py" in result.stdout


def test_gen_check_fails_on_a_stray_file_in_generated(repo_copy: Path) -> None:
    """A file in generated/ that no proto produces makes gen-check fail."""
    (repo_copy / "generated/paynow/account/v1/extra_pb2.py").write_text("x = 1\n")
    result = _run_gen(repo_copy, "--check")
    assert result.returncode == 1
    assert "not generated: generated/paynow/account/v1/extra_pb2.py" in result.stdout


def test_google_modules_are_never_emitted(repo_copy: Path) -> None:
    """google/** belongs to googleapis-common-protos and protobuf, not to generated/."""
    assert not (repo_copy / "generated" / "google").exists()
    assert (repo_copy / "generated/buf/validate/validate_pb2.py").is_file()
