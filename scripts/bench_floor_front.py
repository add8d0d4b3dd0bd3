"""The floor under any Python front on grpc.aio: the edge's HTTP server, one grpc.aio call and
the compiled JSON encoder, and nothing else (no routing table, authentication, limits,
metrics, trace context or log line). Measured beside the edge as an extra front of
../shared/bench/anchor_bench.sh, run from the repository root with EXTRA_CWD=$PWD and this
EXTRA_FRONTS entry:

    floor=PYTHONPATH={STUBS}:. .venv/bin/python scripts/bench_floor_front.py {PORT}

It serves `GET /v1/accounts/{id}` from `bench.v1.AccountService/GetAccount` at $BACKEND,
the anchor's call (its stubs come from the anchor's {STUBS} directory). docs/benchmarks.md
says what it measured.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys

import grpc
from google.protobuf import descriptor_pool

from services.edge.marshal import ResponseEncoder
from services.edge.server import HttpConnection, Limits, Request, serve


async def main(port: int, backend: str) -> None:
    bench = importlib.import_module("bench.v1.bench_pb2")
    channel = grpc.aio.insecure_channel(backend)
    call = channel.unary_unary(
        "/bench.v1.AccountService/GetAccount",
        request_serializer=bench.GetAccountRequest.SerializeToString,
        response_deserializer=bench.Account.FromString,
    )
    encoder = ResponseEncoder(bench.Account.DESCRIPTOR, "", descriptor_pool.Default())

    async def handle(request: Request, conn: HttpConnection) -> None:
        reply = await call(bench.GetAccountRequest(id=request.path.rsplit("/", 1)[1]), timeout=10)
        conn.respond(200, [], *encoder.encode(reply))

    await serve(handle, "127.0.0.1", port, Limits())
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), os.environ.get("BACKEND", "127.0.0.1:50061")))
