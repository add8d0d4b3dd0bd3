"""`python -m services.framework.stack` (what `make run` runs): every service, one terminal.

Starts each registry service in dependency order (the edge last) with a shared, freshly
generated internal token, prefixes their output with their names, prints one screen with
every port and the edge's URLs, and on Ctrl-C or SIGTERM stops them all and exits 0.
Exits 1 if a service fails to start or dies while the others run.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from ._stack import Stack, StackError

__all__ = ["main"]


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _summary(stack: Stack) -> list[str]:
    """The one screen printed once everything is up: every port, then the edge's URLs."""
    data_dir = Path(stack.env["PAYNOW_DATA_DIR"]).resolve()
    width = max(map(len, stack.processes))
    lines = [f"all {len(stack.processes)} services are SERVING (data in {data_dir}):"]
    for name, service in stack.processes.items():
        kind = "HTTP" if service.is_http else "gRPC"
        lines.append(f"  {name:<{width}}  {kind}  {service.address:<16} pid {service.pid}")
    for service in stack.processes.values():
        if service.is_http:
            lines += [
                f"{service.name}: {service.url}",
                f"  API reference  {service.url}/docs",
                f"  OpenAPI        {service.url}/openapi.json",
            ]
    lines.append("Ctrl-C stops them all.")
    return lines


async def supervise() -> int:
    """Run the stack until SIGINT/SIGTERM (exit code 0) or a failure (exit code 1)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    stack = Stack(echo=_print, console_logs=sys.stdout.isatty())
    stop_requested = asyncio.ensure_future(stopping.wait())
    code = 0
    try:
        starting = asyncio.ensure_future(stack.start())
        await asyncio.wait({starting, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # Ctrl-C during start-up: abandon it, stop what runs
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        elif isinstance(starting.exception(), StackError):
            code = 1  # the failing service's log is already printed
        else:
            starting.result()
            for line in _summary(stack):
                stack.say(line)
            exited = asyncio.ensure_future(stack.wait_for_exit())
            await asyncio.wait({exited, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
            if not stop_requested.done():
                died = exited.result()
                stack.say(f"{died.name} exited (code {died.process.returncode}); stopping")
                code = 1
            exited.cancel()
        stack.say("stopping every service")
    finally:
        stop_requested.cancel()
        await stack.stop()
    return code


def main() -> None:
    """Entry point of `python -m services.framework.stack`."""
    sys.exit(asyncio.run(supervise()))


if __name__ == "__main__":
    main()
