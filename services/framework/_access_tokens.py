"""Access-token verification: what the edge runs on every request's bearer token.

A token is accepted only if all of these hold, checked in this order so that nothing from an
unverified token is trusted before its signature is:

1. its header names an allowed asymmetric algorithm (`alg: none` and every HMAC algorithm are
   refused outright: an HMAC "signed" with the public key as secret is the classic algorithm
   confusion attack) and a `kid`;
2. the JWKS holds that key (an unknown `kid` refetches the set once, at a bounded rate, since
   it may be a key added by a rotation) and the key's type fits the algorithm;
3. the signature verifies; `iss` and `aud` are ours; exp, iat, nbf, iss, aud, sub and jti
   are present; and the clock (with a small leeway) is inside [nbf, exp).

Every refusal is an `AccessTokenRejected` with the same client message; its `cause` says why,
for the log only, so a client cannot probe which check failed.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
import structlog

from ._errors import Unauthenticated

__all__ = [
    "AccessTokenRejected",
    "AccessTokenVerifier",
    "CachedJwks",
    "JwksFetch",
    "VerifiedToken",
]

log = structlog.get_logger(__name__)

JwksFetch = Callable[[], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]

# Algorithm → the JWK key types that may carry it. Only asymmetric algorithms exist here: a
# verifier holding only public keys has no business accepting a shared-secret algorithm.
_KEY_TYPES = {
    "EdDSA": ("OKP",),
    "ES256": ("EC",),
    "ES384": ("EC",),
    "RS256": ("RSA",),
    "PS256": ("RSA",),
}
_REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]


class AccessTokenRejected(Unauthenticated):
    """The access token is not acceptable; `cause` (for logs only) says which check failed."""

    message = "the access token is invalid or expired"

    def __init__(self, cause: str) -> None:
        super().__init__()
        self.cause = cause


@dataclass(frozen=True)
class VerifiedToken:
    """What a verified access token says: who (`subject`, an account id) and until when."""

    subject: str
    token_id: str
    expires_at: datetime
    key_id: str


class CachedJwks:
    """A JWKS source that fetches at most once per `max_age_s`, and on request (an unknown
    `kid`) refetches early but never more often than once per `min_refetch_interval_s`.

    `fetch` returns the JWKS dict (`{"keys": [...]}`), synchronously or as an awaitable. A
    failed fetch keeps serving the last good set (logged); with none, the error propagates.
    """

    def __init__(
        self,
        fetch: JwksFetch,
        *,
        max_age_s: float = 300.0,
        min_refetch_interval_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_age_s = max_age_s
        self._min_interval_s = min_refetch_interval_s
        self._clock = clock
        self._jwks: Mapping[str, Any] | None = None
        self._fetched_at = 0.0
        self._attempted_at = 0.0
        self._lock = asyncio.Lock()

    def _due(self, refresh: bool) -> bool:
        if self._jwks is None:
            return True
        now = self._clock()
        if now - self._attempted_at < self._min_interval_s:
            return False  # the bound that keeps forged kids from turning into a fetch storm
        return refresh or now - self._fetched_at >= self._max_age_s

    async def get(self, *, refresh: bool = False) -> Mapping[str, Any]:
        """The current JWKS; `refresh` asks for a fresh copy if the rate bound allows."""
        if self._due(refresh):
            # One fetch at a time: concurrent requests with the same new kid share it.
            async with self._lock:
                if self._due(refresh):
                    await self._refetch()
        assert self._jwks is not None
        return self._jwks

    async def _refetch(self) -> None:
        self._attempted_at = self._clock()
        try:
            result = self._fetch()
            jwks = await result if inspect.isawaitable(result) else result
        except Exception as error:
            if self._jwks is None:
                raise
            log.warning("jwks_fetch_failed", error=type(error).__name__)
            return
        self._jwks = jwks
        self._fetched_at = self._attempted_at


class AccessTokenVerifier:
    """Verifies PayNow access tokens against a JWKS; see the module docstring for the rules.

    `jwks_source` is a CachedJwks or any fetch function (wrapped in a CachedJwks with its
    defaults). Raises ValueError at construction for an empty or symmetric `algorithms`.
    """

    def __init__(
        self,
        jwks_source: CachedJwks | JwksFetch,
        *,
        issuer: str,
        audience: str,
        algorithms: tuple[str, ...] = ("EdDSA",),
        leeway_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        unsupported = [alg for alg in algorithms if alg not in _KEY_TYPES]
        if not algorithms or unsupported:
            raise ValueError(f"only asymmetric algorithms are allowed, got {unsupported}")
        self._jwks = jwks_source if isinstance(jwks_source, CachedJwks) else CachedJwks(jwks_source)
        self._issuer = issuer
        self._audience = audience
        self._algorithms = algorithms
        self._leeway_s = leeway_s
        self._clock = clock
        self._parsed: tuple[Mapping[str, Any], dict[str, jwt.PyJWK]] | None = None

    async def verify(self, token: str) -> VerifiedToken:
        """Return the token's verified facts; raises AccessTokenRejected if any check fails."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AccessTokenRejected("malformed") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self._algorithms:
            raise AccessTokenRejected("algorithm_refused")
        if not isinstance(kid, str) or not kid:
            raise AccessTokenRejected("key_id_missing")
        key = await self._key(kid)
        if key is None:
            raise AccessTokenRejected("unknown_key")
        if key.key_type not in _KEY_TYPES[alg]:
            raise AccessTokenRejected("algorithm_refused")
        claims = self._decode(token, key, alg)
        self._check_times(claims)
        subject, token_id = claims["sub"], claims["jti"]
        if not isinstance(subject, str) or not subject or not isinstance(token_id, str):
            raise AccessTokenRejected("claim_invalid")
        return VerifiedToken(
            subject=subject,
            token_id=token_id,
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            key_id=kid,
        )

    async def _key(self, kid: str) -> jwt.PyJWK | None:
        key = self._keys(await self._jwks.get()).get(kid)
        if key is None:
            # Perhaps a key added by a rotation since the last fetch: look once more.
            key = self._keys(await self._jwks.get(refresh=True)).get(kid)
        return key

    def _keys(self, jwks: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
        if self._parsed is not None and self._parsed[0] is jwks:
            return self._parsed[1]
        keys: dict[str, jwt.PyJWK] = {}
        for entry in jwks.get("keys", []):
            if not isinstance(entry, Mapping) or not entry.get("kid"):
                continue
            # Only key types some allowed algorithm uses: an "oct" (shared secret) key in a
            # published set must never become a verification key.
            if not any(entry.get("kty") in _KEY_TYPES[alg] for alg in self._algorithms):
                continue
            try:
                keys[str(entry["kid"])] = jwt.PyJWK(dict(entry))
            except jwt.PyJWTError:
                log.warning("jwks_key_unusable", key_id=str(entry["kid"]))
        self._parsed = (jwks, keys)
        return keys

    def _decode(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                # Times are checked below against the injectable clock instead.
                options={
                    "require": _REQUIRED_CLAIMS,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise AccessTokenRejected("bad_signature") from None
        except jwt.InvalidAudienceError:
            raise AccessTokenRejected("wrong_audience") from None
        except jwt.InvalidIssuerError:
            raise AccessTokenRejected("wrong_issuer") from None
        except jwt.MissingRequiredClaimError:
            raise AccessTokenRejected("claim_missing") from None
        except jwt.InvalidTokenError:
            raise AccessTokenRejected("malformed") from None

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        times = [claims["exp"], claims["nbf"], claims["iat"]]
        if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in times):
            raise AccessTokenRejected("claim_invalid")
        now = self._clock()
        if now >= claims["exp"] + self._leeway_s:
            raise AccessTokenRejected("expired")
        if now + self._leeway_s < claims["nbf"] or now + self._leeway_s < claims["iat"]:
            raise AccessTokenRejected("not_yet_valid")
