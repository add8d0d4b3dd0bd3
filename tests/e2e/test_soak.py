"""`make soak` (scripts/soak.py), shortened to 20 s: the real stack under mixed traffic, no
error, a memory row for every process, and its section written beside the others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services.framework._registry import load_registry

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

OTHER_SECTION = "<!-- bench:edge -->\nthe edge's figures\n<!-- /bench:edge -->"


def test_a_short_soak_passes_and_reports_every_process(tmp_path: Path) -> None:
    """Exit 0, a table row per process, the outcome counts, and the Soak section written
    into a copy of the document without touching another benchmark's section."""
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\n## The edge\n\n{OTHER_SECTION}\n", encoding="utf-8")
    command = [sys.executable, "scripts/soak.py", "--seconds", "20", "--write", str(doc)]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=150, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    for name in load_registry().services:
        assert any(row.startswith(f"| {name} | ") for row in rows), done.stdout
    for outcome in ("2xx", "expected 4xx", "unexpected 4xx", "5xx", "transport"):
        assert any(row.startswith(f"| {outcome} | ") for row in rows), done.stdout
    assert "**PASS**" in done.stdout
    assert " 0 mismatches" in done.stdout
    written = doc.read_text(encoding="utf-8")
    assert OTHER_SECTION in written
    assert written.count("## Soak") == 1
    assert "<!-- bench:soak -->" in written
    assert "<!-- /bench:soak -->" in written
