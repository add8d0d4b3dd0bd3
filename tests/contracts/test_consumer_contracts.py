"""Consumer-driven contracts: each interaction a consumer relies on, verified against the
real provider, and proof that a provider dropping or retyping a field a consumer reads
fails with the consumer, the RPC and the field named."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from .exchange import (
    CONSUMERS_DIR,
    Contract,
    Exchange,
    ExchangeFailed,
    Providers,
    Schema,
    load_contract,
    provider_stack,
    replay,
    serve_stub,
    short_name,
)

SCHEMA = Schema.load()
CONTRACTS = [load_contract(path) for path in sorted(CONSUMERS_DIR.glob("*.json"))]
INTERACTIONS = [(c, i) for c in CONTRACTS for i in c.interactions]
TRANSFER = "paynow.account.v1.AccountService/Transfer"


def label(contract: Contract, interaction: Exchange) -> str:
    """How a failure names the pair and the RPC: `merchant → account Transfer`."""
    return f"{contract.consumer} → {contract.provider} {short_name(interaction.rpc)}"


async def verify(
    contract: Contract, interaction: Exchange, providers: Providers, schema: Schema = SCHEMA
) -> None:
    await replay(interaction, providers, schema, label=label(contract, interaction))


@pytest.fixture(scope="module")
async def providers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Providers]:
    async with provider_stack(tmp_path_factory.mktemp("providers")) as running:
        yield running


def test_every_consumer_keeps_a_contract_with_each_provider_it_calls() -> None:
    """The pairs that call each other in production all have a contract file."""
    pairs = {(c.consumer, c.provider) for c in CONTRACTS}
    assert pairs == {
        ("edge", "auth"),
        ("edge", "account"),
        ("edge", "merchant"),
        ("auth", "account"),
        ("merchant", "account"),
    }


def test_contract_file_names_say_consumer_and_provider() -> None:
    """`<consumer>-<provider>.json`, so a team finds what others rely on at a glance."""
    for contract in CONTRACTS:
        assert contract.path.stem == f"{contract.consumer}-{contract.provider}"


@pytest.mark.parametrize(
    ("contract", "interaction"),
    INTERACTIONS,
    ids=[f"{c.path.stem}: {i.name}" for c, i in INTERACTIONS],
)
async def test_provider_honours_what_the_consumer_relies_on(
    contract: Contract, interaction: Exchange, providers: Providers
) -> None:
    """The real provider answers each interaction with the fields or error the consumer reads."""
    await verify(contract, interaction, providers)


# --- the protection: a provider that breaks a consumer fails the check, by name ---------------

Rewrite = Callable[[bytes], bytes]


@asynccontextmanager
async def altered_provider(target: str, rpc: str, rewrite: Rewrite) -> AsyncIterator[str]:
    """A tiny proxy in front of `target` that passes every call through, except that it
    rewrites the serialized response of `rpc`: a provider someone changed."""
    service, _, method_name = rpc.partition("/")
    channel = grpc.aio.insecure_channel(target)

    def forward(path: str, change: Rewrite | None) -> Callable[..., Awaitable[bytes]]:
        call = channel.unary_unary(path)

        async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            metadata = [(k, v) for k, v in context.invocation_metadata() if not k.startswith(":")]
            try:
                reply: bytes = await call(request, metadata=metadata)
            except grpc.aio.AioRpcError as error:
                await context.abort(error.code(), error.details(), error.trailing_metadata())
            return change(reply) if change else reply

        return handle

    methods = {
        m.name: grpc.unary_unary_rpc_method_handler(
            forward(f"/{service}/{m.name}", rewrite if m.name == method_name else None)
        )
        for m in SCHEMA.pool.FindServiceByName(service).methods
        if not m.server_streaming
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service, methods)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)
        await channel.close()


def _with_account_at(providers: Providers, address: str) -> Providers:
    return Providers({**providers.addresses, "account": address}, providers.internal_token)


def _drop_transfer_id(reply: bytes) -> bytes:
    response = SCHEMA.message_class(SCHEMA.method(TRANSFER).output_type).FromString(reply)
    response.transfer.ClearField("id")
    return response.SerializeToString()


def _schema_with_transfer_id_as_int64() -> tuple[Schema, Rewrite]:
    """The descriptor set as it would be regenerated after `string id` became `int64 id`,
    and a rewrite that answers in that shape."""
    files = descriptor_pb2.FileDescriptorSet.FromString(
        (CONSUMERS_DIR.parents[2] / "generated" / "paynow" / "descriptor_set.binpb").read_bytes()
    )
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        if file.name == "paynow/account/v1/account.proto":
            transfer = next(m for m in file.message_type if m.name == "Transfer")
            next(
                f for f in transfer.field if f.name == "id"
            ).type = descriptor_pb2.FieldDescriptorProto.TYPE_INT64
        pool.Add(file)
    altered = Schema(pool, [f.name for f in files.file if f.package.startswith("paynow.")])
    response_class = message_factory.GetMessageClass(altered.method(TRANSFER).output_type)

    def retype(reply: bytes) -> bytes:
        original = SCHEMA.message_class(SCHEMA.method(TRANSFER).output_type).FromString(reply)
        changed = response_class(created=original.created)
        changed.transfer.id = 1250
        changed.transfer.amount_minor = original.transfer.amount_minor
        return changed.SerializeToString()

    return altered, retype


def _merchant_transfer() -> tuple[Contract, Exchange]:
    contract = next(c for c in CONTRACTS if c.path.stem == "merchant-account")
    return contract, contract.interaction("a payment's transfer")


async def test_a_provider_that_drops_a_field_a_consumer_reads_fails_naming_it(
    providers: Providers,
) -> None:
    """Account answering Transfer without `transfer.id` breaks merchant, and says so."""
    contract, interaction = _merchant_transfer()
    async with altered_provider(
        providers.addresses["account"], TRANSFER, _drop_transfer_id
    ) as proxy:
        with pytest.raises(ExchangeFailed) as failed:
            await verify(contract, interaction, _with_account_at(providers, proxy))
    assert str(failed.value) == "merchant → account Transfer: response field transfer.id missing"


async def test_a_provider_that_retypes_a_field_a_consumer_reads_fails_naming_it(
    providers: Providers,
) -> None:
    """Account regenerated with `transfer.id` as int64 breaks merchant, and says so."""
    contract, interaction = _merchant_transfer()
    altered, retype = _schema_with_transfer_id_as_int64()
    async with altered_provider(providers.addresses["account"], TRANSFER, retype) as proxy:
        with pytest.raises(ExchangeFailed) as failed:
            await verify(contract, interaction, _with_account_at(providers, proxy), altered)
    assert str(failed.value) == (
        "merchant → account Transfer: response field transfer.id: "
        "the contract reads an id, the provider declares int64"
    )


async def test_an_unchanged_provider_behind_the_proxy_passes(providers: Providers) -> None:
    """The proxy alone changes nothing, so the failures above come from the alteration."""
    contract, interaction = _merchant_transfer()
    async with altered_provider(providers.addresses["account"], TRANSFER, lambda b: b) as proxy:
        await verify(contract, interaction, _with_account_at(providers, proxy))


# --- the stub provider holds the consumer to the same file --------------------------------


async def test_the_stub_reports_a_request_the_contract_does_not_cover() -> None:
    """A consumer sending what the provider never verified fails its own test, by field."""
    from paynow.account.v1 import account_service_pb2, account_service_pb2_grpc

    contract, _ = _merchant_transfer()
    request = account_service_pb2.TransferRequest(
        from_account_id="acc_" + "1" * 26,
        to_account_id="acc_" + "2" * 26,
        amount_minor=999,
        currency_code="EUR",
        memo="payment pay_1",
        idempotency_key="pay_1",
    )

    async def send_uncovered_request() -> None:
        async with (
            serve_stub(contract, "a payment's transfer") as stub,
            grpc.aio.insecure_channel(stub.address) as channel,
        ):
            with pytest.raises(grpc.aio.AioRpcError):
                await account_service_pb2_grpc.AccountServiceStub(channel).Transfer(request)

    with pytest.raises(AssertionError) as uncovered:
        await send_uncovered_request()
    assert "request field amountMinor: expected '1250', got '999'" in str(uncovered.value)
