"""A real service process for the shutdown and logging tests (`-m tests.framework.slow_service`).

Deposit stays in flight until the process's own health turns NOT_SERVING, so a test can
SIGTERM it mid-call without sleeping; ListAccounts returns once Deposit is in flight.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from paynow.account.v1 import account_service_pb2
from services.framework import INTERNAL_TOKEN_KEY, ServiceApp, ServiceSettings, load_settings
from tests.framework.fakes import FakeAccountServicer, make_app

SECRET_PASSWORD = "correct-horse-battery-staple"
_log = structlog.get_logger("slow_service")


class SlowServicer(FakeAccountServicer):
    app: ServiceApp

    async def Deposit(self, request: Any, context: Any) -> Any:
        self.started.set()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.app.port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            async for response in watch:
                if response.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    break
            watch.cancel()
        return account_service_pb2.DepositResponse()

    async def ListAccounts(self, request: Any, context: Any) -> Any:
        await self.started.wait()
        # Secrets a careless servicer might log: redaction must catch every one.
        token = dict(context.invocation_metadata())[INTERNAL_TOKEN_KEY]
        _log.info(
            "careless_line",
            password=SECRET_PASSWORD,
            refresh_token="rt-" + SECRET_PASSWORD,
            headers={"authorization": "Bearer " + SECRET_PASSWORD},
            note=f"token was {token}",
        )
        return account_service_pb2.ListAccountsResponse()

    async def CloseAccount(self, request: Any, context: Any) -> Any:
        token = dict(context.invocation_metadata())[INTERNAL_TOKEN_KEY]
        raise RuntimeError(f"leaked credential {token}")


def main() -> None:
    servicer = SlowServicer()
    servicer.app = make_app(load_settings(ServiceSettings, "fake"), servicer)
    asyncio.run(servicer.app.serve())


if __name__ == "__main__":
    main()
