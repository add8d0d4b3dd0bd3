"""The test library's backend: a plain grpc.aio server (no PayNow framework).

PYTHONPATH=<compiled>:. python -m tests.edge.library_backend --port N
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import Any

import grpc
from google.protobuf import any_pb2, empty_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from testing.library.v1 import library_pb2 as pb
from testing.library.v1 import library_pb2_grpc

from tests.edge.library import SERVICE

_EMPTY = empty_pb2.Empty()


def _status(code: int, message: str) -> Any:
    status = status_pb2.Status(code=code, message=message)
    info = error_details_pb2.ErrorInfo(
        reason="TEST_FAILURE", domain="testing.library", metadata={"code": str(code)}
    )
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="code", description="x")
        ]
    )
    for detail in (info, bad):
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return rpc_status.to_status(status)


class Library(library_pb2_grpc.LibraryServiceServicer):
    async def GetShelf(self, request: Any, context: Any) -> Any:
        return pb.Shelf(id=request.shelf_id, theme=f"theme of {request.shelf_id}", book_count=2**40)

    async def GetShelfTheme(self, request: Any, context: Any) -> Any:
        # Says which backend process answered, so a test can see calls spread over several.
        await context.send_initial_metadata((("x-backend-pid", str(os.getpid())),))
        return await self.GetShelf(request, context)

    async def GetBook(self, request: Any, context: Any) -> Any:
        return pb.Book(name=request.name, title="Title", page_count=300)

    async def SearchBooks(self, request: Any, context: Any) -> Any:
        return request

    async def CreateBook(self, request: Any, context: Any) -> Any:
        book = request.book
        book.name = f"shelves/{request.shelf_id}/books/{request.book_id}"
        return book

    async def UpdateBook(self, request: Any, context: Any) -> Any:
        return request

    async def CheckoutBook(self, request: Any, context: Any) -> Any:
        return request

    async def DeleteBook(self, request: Any, context: Any) -> Any:
        return _EMPTY

    async def GetBookCover(self, request: Any, context: Any) -> Any:
        from google.api import httpbody_pb2

        return httpbody_pb2.HttpBody(
            content_type="image/svg+xml", data=b"<svg>" + request.name.encode() + b"</svg>"
        )

    async def ExportBooks(self, request: Any, context: Any) -> Any:
        for i in range(request.count):
            if request.fail_after and i == request.fail_after:
                await context.abort_with_status(_status(9, "the shelf was closed mid-export"))
            yield pb.Book(name=f"shelves/{request.shelf_id}/books/{i}", page_count=i)

    async def Fail(self, request: Any, context: Any) -> Any:
        await context.abort_with_status(_status(request.code, f"failed with {request.code}"))

    async def Sleep(self, request: Any, context: Any) -> Any:
        await asyncio.sleep(request.ms / 1000)
        return _EMPTY

    async def WhoAmI(self, request: Any, context: Any) -> Any:
        await context.send_initial_metadata((("x-backend", "library"),))
        context.set_trailing_metadata((("x-trailer", "done"),))
        received = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        return pb.WhoAmIResponse(metadata=received)

    async def GetMyShelf(self, request: Any, context: Any) -> Any:
        user = dict(context.invocation_metadata()).get("x-paynow-user-id", "")
        return pb.Shelf(id=user)

    async def Reindex(self, request: Any, context: Any) -> Any:
        return _EMPTY


async def serve(port: int) -> None:
    server = grpc.aio.server()
    library_pb2_grpc.add_LibraryServiceServicer_to_server(Library(), server)
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await checker.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    print(f"library backend listening on 127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))
