"""Signing keys: Ed25519 PEM files in a directory, published as a JWKS; the newest signs.

A key file is named `<UTC time>-<kid prefix>.pem` (`20261125T101500Z-3q2k…pem`, written by
`scripts/signing_keys.py generate`), and the name, not the file's mtime, orders keys: copies
into a Kubernetes secret or a container image all get one mtime, names keep their order.
The greatest name signs; every key is published. The kid is the key's RFC 7638 JWK
thumbprint, so it is the same on every replica and changes only with the key.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .domain import SignedToken

__all__ = ["JwtSigner", "KeyRing", "SigningKey", "ensure_signing_key", "generate_key", "load_keys"]

log = structlog.get_logger(__name__)

_SUFFIX = ".pem"
_STAMP = "%Y%m%dT%H%M%SZ"
_SECOND = timedelta(seconds=1)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    name: str
    kid: str
    private_key: Ed25519PrivateKey

    def public_jwk(self) -> dict[str, str]:
        """The public half as a JWK (RFC 8037), with kid, alg and use."""
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "kid": self.kid}


def _thumbprint(private_key: Ed25519PrivateKey) -> str:
    raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    # RFC 7638: the required members only, sorted, no whitespace.
    members = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}, separators=(",", ":"), sort_keys=True
    )
    return _b64url(hashlib.sha256(members.encode()).digest())


def _load(path: Path) -> SigningKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path.name}: not an Ed25519 private key")
    return SigningKey(path.name, _thumbprint(key), key)


def load_keys(directory: Path) -> list[SigningKey]:
    """Every `*.pem` key in `directory`, oldest name first (the last one signs)."""
    if not directory.is_dir():
        return []
    paths = sorted(p for p in directory.iterdir() if p.suffix == _SUFFIX and p.name[0] != ".")
    return [_load(path) for path in paths]


def generate_key(directory: Path, now: datetime | None = None) -> SigningKey:
    """Write a new Ed25519 key (mode 0600) into `directory`; it signs from the next reload."""
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    kid = _thumbprint(key)
    stamp = now or datetime.now(UTC)
    # The new key must sort last, or it would not sign: two keys made within one second
    # (or after a clock step back) get the next second after the newest name instead.
    newest = max((p.name for p in directory.glob(f"*{_SUFFIX}")), default="")
    # ValueError: no key yet, or a name not in our format (which sorts by its own name).
    with contextlib.suppress(ValueError):
        stamp = max(stamp, datetime.strptime(newest[:16], _STAMP).replace(tzinfo=UTC) + _SECOND)
    name = f"{stamp:{_STAMP}}-{kid[:8]}{_SUFFIX}"
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Written under a hidden name, then renamed: a replica reloading meanwhile never reads
    # half a key.
    partial = directory / f".{name}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    partial.replace(directory / name)
    return SigningKey(name, kid, key)


class KeyRing:
    """The keys of a directory, re-read when its listing changes (checked at most every
    `reload_interval_s`), so a rotation reaches a running service without a restart."""

    def __init__(
        self,
        directory: Path,
        *,
        reload_interval_s: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory = directory
        self._interval = reload_interval_s
        self._monotonic = monotonic
        self._listing: tuple[tuple[str, int], ...] = ()
        self._keys: list[SigningKey] = []
        self._checked = float("-inf")
        self.reload()
        if not self._keys:
            raise FileNotFoundError(f"no signing key (*.pem) in {directory}")

    def _current_listing(self) -> tuple[tuple[str, int], ...]:
        if not self._directory.is_dir():
            return ()
        return tuple(
            sorted(
                (p.name, p.stat().st_mtime_ns)
                for p in self._directory.iterdir()
                if p.suffix == _SUFFIX
            )
        )

    def reload(self) -> None:
        """Re-read the directory now. An unreadable or empty one keeps the keys in use."""
        self._checked = self._monotonic()
        listing = self._current_listing()
        if listing == self._listing:
            return
        try:
            keys = load_keys(self._directory)
        except (OSError, ValueError):
            log.error("signing_keys_unreadable", directory=str(self._directory), exc_info=True)
            return
        if not keys:
            log.error("signing_keys_missing", directory=str(self._directory))
            return
        self._listing, self._keys = listing, keys
        log.info("signing_keys_loaded", key_ids=[k.kid for k in keys], signing_key_id=keys[-1].kid)

    def _fresh(self) -> list[SigningKey]:
        if self._monotonic() - self._checked >= self._interval:
            self.reload()
        return self._keys

    @property
    def signing_key(self) -> SigningKey:
        return self._fresh()[-1]

    def jwks(self) -> dict[str, Any]:
        """Every key's public JWK, as a JSON Web Key Set."""
        return {"keys": [{**k.public_jwk(), "alg": "EdDSA", "use": "sig"} for k in self._fresh()]}


class JwtSigner:
    """The domain's AccessTokenSigner: EdDSA JWTs with iss, aud, sub, exp, iat, nbf, jti."""

    def __init__(self, keys: KeyRing, *, issuer: str, audience: str, ttl: timedelta) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl

    def sign(self, subject: str, now: datetime) -> SignedToken:
        key = self._keys.signing_key
        expire_time = now + self._ttl
        issued, expires = int(now.timestamp()), int(expire_time.timestamp())
        claims: dict[str, str | int] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "iat": issued,
            "nbf": issued,
            "exp": expires,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})
        return SignedToken(token, datetime.fromtimestamp(expires, UTC))


def ensure_signing_key(directory: Path, *, autogenerate: bool) -> None:
    """Make sure `directory` holds a key: generate one if allowed (development), else raise
    FileNotFoundError, so a service with a missing key mount stops instead of serving."""
    if load_keys(directory):
        return
    if not autogenerate:
        raise FileNotFoundError(f"no signing key (*.pem) in {directory}")
    key = generate_key(directory)
    log.warning("signing_key_generated", key_id=key.kid, directory=str(directory))
