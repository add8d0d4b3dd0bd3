"""ServiceApp: start a service, report health truthfully, and shut down without losing calls."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import grpc
import structlog
from google.protobuf.descriptor import EnumDescriptor, ServiceDescriptor
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from paynow.api.v1 import annotations_pb2

from ._background import BackgroundJob, BackgroundJobs
from ._clients import close_channels
from ._config import ServiceSettings
from ._health import Health
from ._idempotency import IdempotencyStore
from ._interceptors import ServerMiddleware
from ._logging import configure_logging, register_secret
from ._metrics import serve_metrics
from ._policy import build_policies
from ._storage import Database
from ._tracing import configure_tracing, shutdown_tracing

__all__ = ["MigratingDatabase", "ServiceApp"]

_log = structlog.get_logger("paynow.app")
_REASON_PREFIX = "ERROR_REASON_"
# The background job every service with idempotent methods gets (docs/framework.md).
IDEMPOTENCY_PURGE_JOB = "idempotency-purge"
IDEMPOTENCY_PURGE_INTERVAL_S = 3600.0


class MigratingDatabase(Protocol):
    """What ServiceApp needs from a database: the framework's Database satisfies it."""

    async def migrate(self, path: str) -> None: ...
    async def ping(self) -> None: ...
    async def dispose(self) -> None: ...


class ServiceApp:
    """One gRPC service process: its servicers, middleware, health and lifecycle."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        domain: str,
        error_reasons: EnumDescriptor | EnumTypeWrapper,
        database: MigratingDatabase | None = None,
        migrations: str | None = None,
        default_access: int = annotations_pb2.ACCESS_INTERNAL,
    ) -> None:
        if database is not None and migrations is None:
            raise ValueError("a database needs its migrations directory")
        self.settings = settings
        self.domain = domain
        # The wire reason drops the enum prefix (ERROR_REASON_INSUFFICIENT_FUNDS → …FUNDS).
        # Pass `errors_pb2.ErrorReason.DESCRIPTOR` (typed in the stubs); the enum wrapper
        # itself is accepted too.
        enum = (
            error_reasons if isinstance(error_reasons, EnumDescriptor) else error_reasons.DESCRIPTOR
        )
        self.error_reasons = frozenset(
            value.name.removeprefix(_REASON_PREFIX) for value in enum.values
        )
        self._database = database
        self._migrations = migrations
        self._default_access = default_access
        self._services: list[tuple[Any, Callable[[Any, Any], None], ServiceDescriptor]] = []
        self._server: Any = None
        self._health: Health | None = None
        self.port: int | None = None
        self.metrics_port: int | None = None
        self._jobs = BackgroundJobs()

    def add_background_job(
        self, name: str, run: Callable[[], Awaitable[object]], *, interval_s: float
    ) -> None:
        """Run `run()` after start-up and then every `interval_s` until the service stops.

        Failures are logged and retried at the next tick; a truthy result is logged.
        """
        self._jobs.add(BackgroundJob(name, run, interval_s))

    @property
    def background_jobs(self) -> tuple[BackgroundJob, ...]:
        """The jobs added so far, in order: a test checks the wiring without waiting for a run."""
        return self._jobs.jobs

    def add_service(
        self,
        servicer: Any,
        add_to_server: Callable[[Any, Any], None],
        descriptor: ServiceDescriptor,
    ) -> None:
        """Register a servicer with its generated `add_…_to_server` and service descriptor."""
        self._services.append((servicer, add_to_server, descriptor))

    async def start(self) -> int:
        """Bind, migrate, then report SERVING; return the bound port (useful with port 0).

        Raises RuntimeError if the port cannot be bound; re-raises a failed migration or ping
        after stopping the server, so nothing ever reports SERVING on a broken database.
        """
        settings = self.settings
        configure_logging(settings.log_level, settings.log_format)
        configure_tracing(settings.service)
        register_secret(settings.internal_token.reveal())
        register_secret(settings.database_url.reveal())
        descriptors = [descriptor for _, _, descriptor in self._services]
        policies = build_policies(descriptors, self._default_access)
        keyed = any(p.replay_as for p in policies.values())
        database = self._database if isinstance(self._database, Database) else None
        store = IdempotencyStore(database) if keyed and database is not None else None
        if store is None and keyed:
            _log.warning("idempotency_keys_not_enforced", reason="the service has no database")
        wired = {job.name for job in self.background_jobs}
        if store is not None and IDEMPOTENCY_PURGE_JOB not in wired:
            # Keys answer retries for 24 hours (AIP-155); past that no decision reads them,
            # and without this the table grows by one row per keyed call, for ever.
            self.add_background_job(
                IDEMPOTENCY_PURGE_JOB, store.purge_expired, interval_s=IDEMPOTENCY_PURGE_INTERVAL_S
            )
        middleware = ServerMiddleware(
            policies,
            domain=self.domain,
            error_reasons=self.error_reasons,
            internal_token=settings.internal_token.reveal(),
            max_concurrent_rpcs=settings.max_concurrent_rpcs,
            idempotency=store,
        )
        server = grpc.aio.server(
            interceptors=[middleware],
            options=[
                # Close each connection after a few minutes (gracefully), so clients
                # re-resolve DNS and spread over pods added by a scale-up.
                ("grpc.max_connection_age_ms", 300_000),
                ("grpc.max_connection_age_grace_ms", int(settings.grace_period_s * 1000)),
            ],
        )
        for servicer, add_to_server, _ in self._services:
            add_to_server(servicer, server)
        health = Health(d.full_name for d in descriptors)
        health.register(server)
        port = server.add_insecure_port(f"{settings.host}:{settings.port}")
        if port == 0:
            raise RuntimeError(f"cannot bind {settings.host}:{settings.port}")
        await health.set_serving(False)
        await server.start()
        self._server, self._health, self.port = server, health, int(port)
        try:
            if self._database is not None and self._migrations is not None:
                await self._database.migrate(self._migrations)
                await self._database.ping()
            if settings.metrics_port >= 0:
                self.metrics_port = self._serve_metrics()
        except Exception:
            _log.error("startup_failed", exc_info=True)
            await self.stop()
            raise
        await health.set_serving(True)
        self._jobs.start()
        _log.info("service_started", service=settings.service, port=port)
        return int(port)

    def _serve_metrics(self) -> int:
        settings = self.settings
        try:
            return serve_metrics(settings.host, settings.metrics_port)
        except OSError as exc:
            # Most often a second `make run`, or a stack left running: say which setting moves it.
            variable = f"PAYNOW_{settings.service.upper()}_METRICS_PORT"
            raise RuntimeError(
                f"cannot serve metrics on {settings.host}:{settings.metrics_port}: "
                f"{exc.strerror or exc}; set {variable} to a free port (0: any)"
            ) from None

    async def stop(self) -> None:
        """Report NOT_SERVING, let in-flight calls finish within the grace period, close all."""
        server, health = self._server, self._health
        if server is None or health is None:
            return
        self._server = None
        await self._jobs.stop()
        await health.shut_down()
        await server.stop(self.settings.grace_period_s)
        await close_channels()
        shutdown_tracing()
        if self._database is not None:
            await self._database.dispose()
        _log.info("service_stopped", service=self.settings.service)

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT, then shut down gracefully and return."""
        await self.start()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        try:
            await stopping.wait()
            _log.info("shutdown_requested", service=self.settings.service)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()
