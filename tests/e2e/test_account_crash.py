"""Account dies mid-approval: no payment is paid twice, none is lost.

Real processes, started as `make run` does. Account is SIGKILLed while 20 approvals are in
flight and then restarted; merchant's recovery settles every interrupted approval from the
ledger. In the end each payment is SUCCEEDED with exactly one transfer, or still payable
with none, and the wallet was debited exactly once per succeeded payment.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from paynow.account.v1 import account_pb2, account_service_pb2, account_service_pb2_grpc
from paynow.merchant.v1 import (
    merchant_pb2,
    merchant_service_pb2,
    merchant_service_pb2_grpc,
    payment_pb2,
    payment_service_pb2,
    payment_service_pb2_grpc,
)
from services.framework import new_id
from services.framework._stack import Stack, free_ports, start_stack

pytestmark = pytest.mark.e2e

PAYMENTS = 20
PRICE = 100


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    env = {
        **__import__("os").environ,
        # Settle interrupted approvals quickly, so the test need not wait a minute.
        "PAYNOW_MERCHANT_RECOVERY_STALE_AFTER_S": "1",
        "PAYNOW_MERCHANT_RECOVERY_INTERVAL_S": "0.5",
    }
    ports = free_ports(["account", "merchant"])
    async with start_stack(tmp_path, services=["merchant"], env=env, ports=ports) as running:
        yield running


def metadata(stack: Stack, **identity: str) -> tuple[tuple[str, str], ...]:
    pairs = [
        ("x-paynow-internal-token", stack.env["PAYNOW_INTERNAL_TOKEN"]),
        ("x-paynow-caller-service", "edge"),
    ]
    pairs += [(f"x-paynow-{key.replace('_', '-')}", value) for key, value in identity.items()]
    return tuple(pairs)


async def wait_until(condition: object, timeout_s: float = 30.0) -> None:
    """Poll an async condition until it holds; fail with a clear message after the timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await condition():  # type: ignore[operator]
        if loop.time() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.1)


async def test_killing_account_mid_approval_pays_each_payment_at_most_once(
    stack: Stack, tmp_path: Path
) -> None:
    """After the crash and recovery, every payment is paid once or still payable."""
    account_addr = stack.processes["account"].address
    merchant_addr = stack.processes["merchant"].address
    async with (
        grpc.aio.insecure_channel(account_addr) as account_channel,
        grpc.aio.insecure_channel(merchant_addr) as merchant_channel,
    ):
        accounts = account_service_pb2_grpc.AccountServiceStub(account_channel)
        merchants = merchant_service_pb2_grpc.MerchantServiceStub(merchant_channel)
        payments = payment_service_pb2_grpc.PaymentServiceStub(merchant_channel)

        async def person() -> str:
            created = await accounts.CreateAccount(
                account_service_pb2.CreateAccountRequest(
                    kind=account_pb2.ACCOUNT_KIND_PERSONAL,
                    email=f"{new_id('usr')}@example.com",
                    display_name="Payer",
                    currency_code="EUR",
                    idempotency_key=new_id("reg"),
                ),
                metadata=metadata(stack),
            )
            return str(created.id)

        payer, owner, stranger = await person(), await person(), await person()
        await accounts.Deposit(
            account_service_pb2.DepositRequest(
                id=payer, amount_minor=PAYMENTS * PRICE, currency_code="EUR", idempotency_key="d"
            ),
            metadata=metadata(stack, user_id=payer),
        )
        shop = await merchants.CreateMerchant(
            merchant_service_pb2.CreateMerchantRequest(
                merchant=merchant_pb2.Merchant(display_name="Shop", currency_code="EUR"),
                idempotency_key="shop",
            ),
            metadata=metadata(stack, user_id=owner),
        )
        as_shop = metadata(stack, merchant_id=shop.id)
        ids = [
            (
                await payments.CreatePayment(
                    payment_service_pb2.CreatePaymentRequest(
                        amount_minor=PRICE, currency_code="EUR", idempotency_key=f"o{n}"
                    ),
                    metadata=as_shop,
                )
            ).id
            for n in range(PAYMENTS)
        ]

        approvals = [
            asyncio.ensure_future(
                payments.ApprovePayment(
                    payment_service_pb2.ApprovePaymentRequest(id=pid, idempotency_key=pid),
                    metadata=metadata(stack, user_id=payer),
                    timeout=10,
                )
            )
            for pid in ids
        ]
        await asyncio.sleep(0.05)  # let some approvals reach account before it dies
        stack.kill("account")
        results = await asyncio.gather(*approvals, return_exceptions=True)
        assert any(isinstance(r, grpc.aio.AioRpcError) for r in results) or all(
            not isinstance(r, BaseException) for r in results
        )
        await stack.restart("account")

        async def settled() -> bool:
            for pid in ids:
                got = await payments.GetPayment(
                    payment_service_pb2.GetPaymentRequest(id=pid), metadata=as_shop
                )
                if got.state == payment_pb2.PAYMENT_STATE_SUCCEEDED:
                    continue
                # Still waiting: settled only once its interrupted approval was released,
                # which makes it visible (payable) to any other signed-in person.
                try:
                    await payments.GetPayment(
                        payment_service_pb2.GetPaymentRequest(id=pid),
                        metadata=metadata(stack, user_id=stranger),
                    )
                except grpc.aio.AioRpcError:
                    return False
            return True

        await wait_until(settled)
        final = [
            await payments.GetPayment(
                payment_service_pb2.GetPaymentRequest(id=pid), metadata=as_shop
            )
            for pid in ids
        ]
        paid = [p.id for p in final if p.state == payment_pb2.PAYMENT_STATE_SUCCEEDED]
        waiting = [p.id for p in final if p.state == payment_pb2.PAYMENT_STATE_REQUIRES_APPROVAL]
        assert len(paid) + len(waiting) == PAYMENTS

        wallet = await accounts.GetAccount(
            account_service_pb2.GetAccountRequest(id=payer), metadata=metadata(stack, user_id=payer)
        )
        assert wallet.balance_minor == (PAYMENTS - len(paid)) * PRICE

        # A payment still waiting can be paid now, once.
        if waiting:
            again = await payments.ApprovePayment(
                payment_service_pb2.ApprovePaymentRequest(id=waiting[0], idempotency_key="retry"),
                metadata=metadata(stack, user_id=payer),
            )
            assert again.state == payment_pb2.PAYMENT_STATE_SUCCEEDED
            paid.append(waiting[0])

    ledger = sqlite3.connect(tmp_path / "account.db")
    try:
        per_payment = dict(
            ledger.execute(
                "SELECT idempotency_key, COUNT(*) FROM transfers"
                " WHERE idempotency_scope = 'transfer:merchant' GROUP BY idempotency_key"
            ).fetchall()
        )
    finally:
        ledger.close()
    assert per_payment == dict.fromkeys(paid, 1)
