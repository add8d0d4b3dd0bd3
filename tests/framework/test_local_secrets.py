"""Development secrets: created once, private, stable across restarts."""

from __future__ import annotations

import stat
from pathlib import Path

from services.framework._local_secrets import local_secret


def test_a_development_secret_is_created_once_and_kept(tmp_path: Path) -> None:
    """The second read returns the value the first one generated."""
    env = {"PAYNOW_DATA_DIR": str(tmp_path)}
    first, second = local_secret("pepper", env), local_secret("pepper", env)
    assert first == second
    assert len(first.reveal()) >= 32


def test_a_development_secret_file_is_private(tmp_path: Path) -> None:
    """Only the owner can read the file."""
    local_secret("pepper", {"PAYNOW_DATA_DIR": str(tmp_path)})
    mode = stat.S_IMODE((tmp_path / "secrets" / "pepper").stat().st_mode)
    assert mode == 0o600
