"""The signing-key files and the script that adds one (rotation step 1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from services.auth.keys import KeyRing, generate_key, load_keys

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "signing_keys.py"


def test_the_script_adds_a_key_that_becomes_the_signing_key(tmp_path: Path) -> None:
    """`generate` twice, then `list`: two keys, the second one signs."""
    for _ in range(2):
        subprocess.run([sys.executable, SCRIPT, "generate", tmp_path], check=True)
    listing = subprocess.run(
        [sys.executable, SCRIPT, "list", tmp_path], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert [line.split()[-1] for line in listing] == ["published", "signs"]


def test_key_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    """A private key is written with mode 0600."""
    generate_key(tmp_path)
    [path] = tmp_path.glob("*.pem")
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_kid_is_the_same_wherever_the_key_is_loaded(tmp_path: Path) -> None:
    """The kid is derived from the public key (RFC 7638), so every replica agrees."""
    key = generate_key(tmp_path)
    assert [k.kid for k in load_keys(tmp_path)] == [key.kid]


def test_every_key_is_published_and_the_newest_signs(tmp_path: Path) -> None:
    """The JWKS lists old and new keys; the newest name signs."""
    old, new = generate_key(tmp_path), generate_key(tmp_path)
    ring = KeyRing(tmp_path)
    assert [k["kid"] for k in ring.jwks()["keys"]] == [old.kid, new.kid]
    assert ring.signing_key.kid == new.kid
