"""The edge's gRPC client: unary and server-streaming calls over its own HTTP/2 connections.

Why not grpc.aio: measured beside it, a grpc.aio client call cost the edge about as much CPU
as the backend spent serving it (C-core's call machinery and thread hand-offs), and that one
cost kept the edge over its budget (docs/benchmarks.md). The edge needs far less of gRPC than
grpc.aio carries: unary and server-streaming calls to known backends, without TLS or
compression. This package does that over asyncio with the `hpack` package's decoder, and
nothing else; services keep calling each other with grpc.aio.
"""

from .balancer import parse_target
from .channel import Channel, UnaryStreamMethod, UnaryUnaryMethod
from .connection import ConnectionSettings

__all__ = [
    "Channel",
    "ConnectionSettings",
    "UnaryStreamMethod",
    "UnaryUnaryMethod",
    "parse_target",
]
