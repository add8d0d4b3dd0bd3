"""CORS: which browser origins may call the API, and answers to preflight requests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["Cors"]

_MAX_AGE_S = 600


class Cors:
    """Allows the configured origins (`*` allows any); with none configured, CORS is off."""

    def __init__(self, origins: Iterable[str]) -> None:
        self._origins = frozenset(o.rstrip("/") for o in origins)
        self._any = "*" in self._origins
        self.enabled = bool(self._origins)

    def _allowed(self, origin: bytes | None) -> bool:
        return origin is not None and (self._any or origin.decode("latin-1") in self._origins)

    def headers(self, request_headers: Mapping[bytes, bytes]) -> list[bytes]:
        """Headers for an actual (non-preflight) response to this request."""
        origin = request_headers.get(b"origin")
        if not self._allowed(origin):
            return []
        assert origin is not None
        # Vary: the answer depends on Origin, so a shared cache must not reuse it for another.
        return [
            b"access-control-allow-origin: %s\r\n" % origin,
            b"vary: Origin\r\n",
            b"access-control-expose-headers: x-request-id\r\n",
        ]

    def is_preflight(self, method: str, request_headers: Mapping[bytes, bytes]) -> bool:
        """True for an OPTIONS request that asks for a method (a browser preflight)."""
        return method == "OPTIONS" and b"access-control-request-method" in request_headers

    def preflight(self, request_headers: Mapping[bytes, bytes], methods: list[str]) -> list[bytes]:
        """Headers that grant the preflight (empty for an origin that is not allowed)."""
        if not self._allowed(request_headers.get(b"origin")):
            return []
        asked = request_headers.get(b"access-control-request-headers", b"")
        return [
            *self.headers(request_headers),
            b"access-control-allow-methods: %s\r\n" % ", ".join(methods).encode(),
            b"access-control-allow-headers: %s\r\n" % asked,
            b"access-control-max-age: %d\r\n" % _MAX_AGE_S,
        ]
