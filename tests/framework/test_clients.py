"""connect() carries the request id, identity and remaining deadline to the next service."""

from __future__ import annotations

import time

import grpc
import pytest

from paynow.account.v1 import account_service_pb2, account_service_pb2_grpc
from services.framework import _identity, connect
from services.framework.testing import caller_metadata, make_settings, serve_in_process
from tests.framework.fakes import ACCOUNT_ID, USER_ID, FakeAccountServicer, make_app

GET = account_service_pb2.GetAccountRequest(id=ACCOUNT_ID)


@pytest.fixture
async def chain():
    """A front service whose GetAccount relays to a back service through connect()."""
    token = make_settings().internal_token
    back_settings = make_settings("back", internal_token=token)
    front_settings = make_settings("front", internal_token=token, default_deadline_ms=5000)
    back = FakeAccountServicer()
    async with serve_in_process(make_app(back_settings, back)) as back_server:
        downstream = connect(
            back_server.address,
            account_service_pb2_grpc.AccountServiceStub,
            settings=front_settings,
        )
        front = FakeAccountServicer(downstream)
        async with serve_in_process(make_app(front_settings, front)) as front_server:
            stub = front_server.stub(
                account_service_pb2_grpc.AccountServiceStub,
                caller_metadata(front_settings, service="edge", user_id=USER_ID),
            )
            yield stub, back


async def test_request_id_reaches_the_next_service(chain) -> None:
    """The x-request-id a service received is the one the service it calls sees."""
    stub, _ = chain
    account = await stub.GetAccount(GET, metadata=(("x-request-id", "req-relay-7"),))
    assert account.display_name == "req-relay-7"


async def test_request_id_is_echoed_in_initial_metadata(chain) -> None:
    """The server echoes the request id back in its initial metadata."""
    stub, _ = chain
    call = stub.GetAccount(GET, metadata=(("x-request-id", "req-echo-1"),))
    metadata = await call.initial_metadata()
    await call
    assert metadata["x-request-id"] == "req-echo-1"


async def test_identity_reaches_the_next_service(chain) -> None:
    """The next service sees the same user, with the calling service as the caller."""
    stub, _ = chain
    account = await stub.GetAccount(GET)
    assert (account.owner_id, account.email) == (USER_ID, "front")


async def test_outgoing_deadline_is_the_incoming_remaining_time(chain) -> None:
    """A call made while serving gets the incoming call's remaining time, not the default."""
    stub, back = chain
    await stub.GetAccount(GET, timeout=1.5)
    (remaining,) = back.seen_time_remaining
    assert remaining is not None
    # gRPC rounds a timeout up on the wire (grpc-timeout units), hence the small slack.
    assert 1.0 < remaining <= 1.55


async def test_outgoing_deadline_defaults_to_the_configured_one(chain) -> None:
    """Without an incoming deadline, the outgoing call gets default_deadline_ms."""
    stub, back = chain
    await stub.GetAccount(GET)
    (remaining,) = back.seen_time_remaining
    assert remaining is not None
    assert 4.0 < remaining <= 5.05


async def test_an_exhausted_deadline_fails_fast() -> None:
    """With no time left, the client answers DEADLINE_EXCEEDED without sending the call."""
    settings = make_settings("front")
    # An address nobody listens on: reaching the network would fail differently.
    stub = connect("127.0.0.1:9", account_service_pb2_grpc.AccountServiceStub, settings=settings)
    token = _identity._deadline.set(time.monotonic() - 1)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetAccount(GET)
    finally:
        _identity._deadline.reset(token)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_connect_outside_the_event_loop_fails_clearly() -> None:
    """A channel made while wiring the app would bind to the wrong loop: refused up front."""
    from paynow.account.v1 import account_service_pb2_grpc
    from services.framework import connect
    from services.framework.testing import make_settings

    with pytest.raises(RuntimeError, match="running event loop"):
        connect(
            "127.0.0.1:1", account_service_pb2_grpc.AccountServiceStub, settings=make_settings()
        )
