"""`python -m services.framework.stack` (what `make run` runs): every service, one terminal.

Starts each registry service in dependency order (the edge last) with a shared, freshly
generated internal token (also written to PAYNOW_DATA_DIR/internal-token for `make call`),
prefixes their output with their names (coloured on a terminal), prints one screen with
every port and the edge's URLs, restarts a service that dies (with backoff, announced), and
on Ctrl-C or SIGTERM stops them all and exits 0. Exits 1 if a service fails to start.
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
        metrics = f"metrics :{stack.metrics_ports[name]}"
        lines.append(
            f"  {name:<{width}}  {kind}  {service.address:<16} {metrics:<14} pid {service.pid}"
        )
    for service in stack.processes.values():
        if service.is_http:
            lines += [
                f"{service.name}: {service.url}",
                f"  API reference  {service.url}/docs",
                f"  OpenAPI        {service.url}/openapi.json",
            ]
    if stack.generated_token:
        lines.append(f"internal token for `make call`: {stack.token_file.resolve()}")
    lines.append("A service that dies is restarted. Ctrl-C stops them all.")
    return lines


async def supervise() -> int:
    """Run the stack until SIGINT/SIGTERM (exit code 0) or a failure (exit code 1)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    terminal = sys.stdout.isatty()
    stack = Stack(echo=_print, console_logs=terminal, colour=terminal)
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
            restarting = asyncio.ensure_future(stack.keep_running())
            await asyncio.wait({restarting, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
            restarting.cancel()  # also mid-backoff or mid-restart: stop() ends what it started
            with contextlib.suppress(asyncio.CancelledError):
                await restarting
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
