"""Health tells the truth: NOT_SERVING until the database is ready, and again on shutdown."""

from __future__ import annotations

import asyncio
import socket

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.framework.testing import make_settings, serve_in_process
from tests.framework.fakes import FakeAccountServicer, GatedDatabase, make_app

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
ACCOUNT_SERVICE = "paynow.account.v1.AccountService"


async def check(channel: grpc.aio.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
    return int(response.status)


async def test_health_is_not_serving_until_migrations_finish() -> None:
    """While migrations run the server answers NOT_SERVING, then SERVING for all names."""
    database = GatedDatabase()
    app = make_app(make_settings("account"), FakeAccountServicer(), database)
    starting = asyncio.create_task(app.start())
    await database.migrating.wait()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        before = await check(channel)
        database.gate.set()
        await starting
        after = [await check(channel), await check(channel, ACCOUNT_SERVICE)]
    await app.stop()
    assert (before, after) == (NOT_SERVING, [SERVING, SERVING])


async def test_health_turns_not_serving_on_shutdown() -> None:
    """Stopping the app reports NOT_SERVING to watchers before the server goes away."""
    app = make_app(make_settings("account"), FakeAccountServicer())
    port = await app.start()
    seen: list[int] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        seen.append((await watch.read()).status)
        stopping = asyncio.create_task(app.stop())
        seen.append((await watch.read()).status)
        watch.cancel()
        await stopping
    assert seen == [SERVING, NOT_SERVING]


async def test_failed_migration_never_reports_serving() -> None:
    """If migrations fail, start() raises and the database is closed."""
    database = GatedDatabase(fail=True)
    database.gate.set()
    app = make_app(make_settings("account"), FakeAccountServicer(), database)
    with pytest.raises(ConnectionError):
        await app.start()
    assert database.disposed


async def test_reflection_lists_the_service(server) -> None:
    """Server reflection lists the registered PayNow service."""
    stub = reflection_pb2_grpc.ServerReflectionStub(server.channel)
    call = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    response = await call.read()
    call.cancel()
    names = [s.name for s in response.list_services_response.service]
    assert ACCOUNT_SERVICE in names


async def test_an_in_process_server_takes_no_fixed_port() -> None:
    """Settings with `make run`'s ports still serve on free ones, so tests run beside a stack."""
    fixed = socket.socket()
    fixed.bind(("127.0.0.1", 0))
    taken = fixed.getsockname()[1]  # held, as a developer's running stack would hold it
    try:
        settings = make_settings("account", port=taken, metrics_port=taken)
        async with serve_in_process(make_app(settings, FakeAccountServicer())) as server:
            assert server.port != taken
            assert server.app.metrics_port not in (None, taken)
    finally:
        fixed.close()


async def test_a_taken_metrics_port_stops_start_up_naming_the_setting() -> None:
    """Start-up fails with the variable to change, and the gRPC server it began is stopped."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    taken = held.getsockname()[1]
    try:
        app = make_app(make_settings("account", metrics_port=taken), FakeAccountServicer())
        with pytest.raises(RuntimeError, match="PAYNOW_ACCOUNT_METRICS_PORT"):
            await app.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=2
                )
        assert failed.value.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )
    finally:
        held.close()
