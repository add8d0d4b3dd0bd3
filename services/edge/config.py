"""EdgeSettings from command-line flags, then PAYNOW_EDGE_* variables, then PayNow defaults.

With no flags the edge fronts PayNow: the generated descriptor set, a backend per gRPC
service of services/registry.toml, and INTERNAL as the default access, so a method that
forgot its access option is not exposed.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from services.framework import ConfigError, Secret, load_registry

from .auth import INTERNAL, PUBLIC
from .grpc_client import parse_target
from .metadata import TrustedProxies
from .rate_limits import DEFAULT_RATE_LIMITS_FILE

__all__ = ["DEFAULT_DESCRIPTOR_SET", "EdgeSettings", "load_edge_settings"]

DEFAULT_DESCRIPTOR_SET = (
    Path(__file__).resolve().parents[2] / "generated" / "paynow" / "descriptor_set.binpb"
)
_ACCESS = {"public": PUBLIC, "internal": INTERNAL}


@dataclasses.dataclass(frozen=True, kw_only=True)
class EdgeSettings:
    """Everything the edge is configured with."""

    host: str = "127.0.0.1"
    port: int = 8080
    descriptor_set: Path = DEFAULT_DESCRIPTOR_SET
    backends: Mapping[str, str] = dataclasses.field(default_factory=dict)
    default_backend: str | None = None
    default_access: int = INTERNAL
    body_limit_bytes: int = 1024 * 1024
    deadline_ms: int = 10_000
    cors_origins: tuple[str, ...] = ()
    internal_token: Secret | None = None
    log_format: str = "auto"
    log_level: str = "info"
    # What auth puts in its access tokens (services/auth/config.py's defaults).
    jwt_issuer: str = "paynow-auth"
    jwt_audience: str = "paynow"
    # A JWKS file for USER routes when there is no auth backend to fetch keys from.
    jwks_file: Path | None = None
    jwt_cache_s: float = 60.0
    api_key_cache_s: float = 30.0
    api_key_cache_entries: int = 10_000
    # Peers whose X-Forwarded-For is believed (load balancers in front of the edge).
    trusted_proxies: TrustedProxies = ()
    # Prometheus metrics over HTTP on their own port (-1: off); by default port + 1000.
    metrics_port: int = -1
    # After SIGTERM, how long requests in flight may take before the edge exits.
    grace_period_s: float = 10.0
    # Slow and oversized traffic (docs/edge.md, "Limits"); timeouts of 0 are off.
    url_limit_bytes: int = 8 * 1024
    header_limit_bytes: int = 16 * 1024
    header_limit_count: int = 100
    json_depth_limit: int = 32
    read_timeout_s: float = 30.0
    idle_timeout_s: float = 60.0
    max_connections: int = 4096
    # Rate limits (docs/edge.md, "Rate limits"): the classes' budgets, and Redis to share
    # them between replicas (None: each process keeps its own buckets).
    rate_limits_file: Path = DEFAULT_RATE_LIMITS_FILE
    redis_url: Secret | None = None
    redis_prefix: str = "paynow:ratelimit:"
    redis_timeout_ms: int = 100


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.edge",
        description="REST/JSON to gRPC transcoder driven by google.api.http annotations.",
    )
    parser.add_argument("--descriptor-set", type=Path, help="FileDescriptorSet (with imports)")
    parser.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="PACKAGE.SERVICE=HOST:PORT",
        help="where a gRPC service is served; repeat per service",
    )
    parser.add_argument("--default-backend", metavar="HOST:PORT")
    parser.add_argument("--default-access", choices=sorted(_ACCESS))
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--body-limit-bytes", type=int)
    parser.add_argument("--deadline-ms", type=int)
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN")
    parser.add_argument("--jwks-file", type=Path, help="JWKS JSON verifying USER routes' JWTs")
    return parser


def _int(env: Mapping[str, str], name: str, flag: int | None, default: int) -> int:
    if flag is not None:
        value = flag
    else:
        raw = env.get(f"PAYNOW_EDGE_{name}")
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"PAYNOW_EDGE_{name}: expected an integer, got {raw!r}") from None
    if value < (0 if name == "PORT" else 1):
        raise ConfigError(f"PAYNOW_EDGE_{name} / --{name.lower().replace('_', '-')}: too small")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(f"PAYNOW_EDGE_{name}")
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"PAYNOW_EDGE_{name}: expected a number, got {raw!r}") from None
    if not 0 <= value < float("inf"):
        raise ConfigError(f"PAYNOW_EDGE_{name}: expected 0 or more seconds, got {raw!r}")
    return value


def _networks(raw: str) -> TrustedProxies:
    try:
        return tuple(
            ipaddress.ip_network(item.strip(), strict=False)
            for item in raw.split(",")
            if item.strip()
        )
    except ValueError as exc:
        raise ConfigError(f"PAYNOW_EDGE_TRUSTED_PROXIES: {exc}") from None


def _registry_backends(env: Mapping[str, str]) -> dict[str, str]:
    backends: dict[str, str] = {}
    for entry in load_registry().services.values():
        if not entry.grpc_services:
            continue  # the edge itself
        prefix = entry.name.upper()
        port = env.get(f"PAYNOW_{prefix}_PORT", str(entry.port))
        address = env.get(f"PAYNOW_EDGE_{prefix}_ADDR", f"127.0.0.1:{port}")
        backends.update(dict.fromkeys(entry.grpc_services, address))
    return backends


def load_edge_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> EdgeSettings:
    """Settings from `argv` and `environ` (defaults: sys.argv, os.environ).

    Raises ConfigError naming the flag or variable that is malformed; argparse exits on
    unknown flags.
    """
    env = os.environ if environ is None else environ
    args = _parser().parse_args(argv)
    backends: dict[str, str] = {}
    for item in args.backend:
        service, sep, address = item.partition("=")
        if not sep or not service or ":" not in address:
            raise ConfigError(f"--backend {item!r}: expected package.Service=host:port")
        backends[service] = address
    default_backend = args.default_backend or env.get("PAYNOW_EDGE_DEFAULT_BACKEND")
    if not backends and not default_backend:
        backends = _registry_backends(env)
    for target in {*backends.values(), *([default_backend] if default_backend else [])}:
        try:
            parse_target(target)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    access = args.default_access or env.get("PAYNOW_EDGE_DEFAULT_ACCESS", "internal")
    if access not in _ACCESS:
        raise ConfigError(
            f"PAYNOW_EDGE_DEFAULT_ACCESS: expected public or internal, got {access!r}"
        )
    origins = args.cors_origin or [
        o.strip() for o in env.get("PAYNOW_EDGE_CORS_ORIGINS", "").split(",") if o.strip()
    ]
    token = env.get("PAYNOW_INTERNAL_TOKEN")
    port = _int(env, "PORT", args.port, 8080)
    return EdgeSettings(
        host=args.host or env.get("PAYNOW_EDGE_HOST", "127.0.0.1"),
        port=port,
        descriptor_set=args.descriptor_set
        or Path(env.get("PAYNOW_EDGE_DESCRIPTOR_SET", str(DEFAULT_DESCRIPTOR_SET))),
        backends=backends,
        default_backend=default_backend,
        default_access=_ACCESS[access],
        body_limit_bytes=_int(env, "BODY_LIMIT_BYTES", args.body_limit_bytes, 1024 * 1024),
        deadline_ms=_int(env, "DEADLINE_MS", args.deadline_ms, 10_000),
        cors_origins=tuple(origins),
        internal_token=Secret(token) if token else None,
        log_format=env.get("PAYNOW_EDGE_LOG_FORMAT", "auto"),
        log_level=env.get("PAYNOW_EDGE_LOG_LEVEL", "info"),
        jwt_issuer=env.get("PAYNOW_EDGE_JWT_ISSUER", "paynow-auth"),
        jwt_audience=env.get("PAYNOW_EDGE_JWT_AUDIENCE", "paynow"),
        jwks_file=args.jwks_file or _path(env.get("PAYNOW_EDGE_JWKS_FILE")),
        jwt_cache_s=_seconds(env, "JWT_CACHE_S", 60.0),
        api_key_cache_s=_seconds(env, "API_KEY_CACHE_S", 30.0),
        api_key_cache_entries=_int(env, "API_KEY_CACHE_ENTRIES", None, 10_000),
        trusted_proxies=_networks(env.get("PAYNOW_EDGE_TRUSTED_PROXIES", "")),
        metrics_port=_int(env, "METRICS_PORT", None, port + 1000 if port else 0),
        grace_period_s=_seconds(env, "GRACE_PERIOD_S", 10.0),
        url_limit_bytes=_int(env, "URL_LIMIT_BYTES", None, 8 * 1024),
        header_limit_bytes=_int(env, "HEADER_LIMIT_BYTES", None, 16 * 1024),
        header_limit_count=_int(env, "HEADER_LIMIT_COUNT", None, 100),
        json_depth_limit=_int(env, "JSON_DEPTH_LIMIT", None, 32),
        read_timeout_s=_seconds(env, "READ_TIMEOUT_S", 30.0),
        idle_timeout_s=_seconds(env, "IDLE_TIMEOUT_S", 60.0),
        max_connections=_int(env, "MAX_CONNECTIONS", None, 4096),
        rate_limits_file=_path(env.get("PAYNOW_EDGE_RATE_LIMITS_FILE")) or DEFAULT_RATE_LIMITS_FILE,
        redis_url=Secret(url) if (url := env.get("PAYNOW_EDGE_REDIS_URL")) else None,
        redis_prefix=env.get("PAYNOW_EDGE_REDIS_PREFIX", "paynow:ratelimit:"),
        redis_timeout_ms=_int(env, "REDIS_TIMEOUT_MS", None, 100),
    )


def _path(raw: str | None) -> Path | None:
    return Path(raw) if raw else None
