"""The process supervisor behind `make run` and the end-to-end tests.

Each registry service runs as its own process (`python -m <module>`) in its own process
group, started once everything it calls is ready: grpc.health.v1 SERVING, or 200 on the
`http_health` path of an HTTP service (the edge, which calls all the others and so starts
last). Ctrl-C in a terminal reaches only the supervisor, which then stops the services in
reverse start order, each draining its calls, instead of all of them dying at once mid-call.
`keep_running` restarts a service that dies after start-up, backing off while it keeps dying.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from pathlib import Path

from ._probes import readiness_probe
from ._registry import Registry, load_registry

__all__ = ["ServiceProcess", "Stack", "StackError", "free_ports", "start_stack"]

_LOG_LINES = 5000  # per process: enough to diagnose a failed start, bounded for long runs
# In PAYNOW_DATA_DIR: the run's credential, for scripts/call.py (a file name, not a secret).
TOKEN_FILE = "internal-token"  # noqa: S105
# ANSI colours for the name prefixes, one per service in start order (cycled); bold for `stack`.
_COLOURS = ("36", "33", "35", "32", "34", "31", "96", "93")
_STACK_COLOUR = "1"


class StackError(Exception):
    """A service could not be started: it exited, or did not report SERVING in time."""


@dataclasses.dataclass(eq=False)
class ServiceProcess:
    """One running service: its port, its process and the output it has written so far."""

    name: str
    port: int
    process: asyncio.subprocess.Process
    lines: collections.deque[str] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=_LOG_LINES)
    )
    reader: asyncio.Task[None] | None = None
    is_http: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Where to reach it: `http://…` for an HTTP service, host:port for gRPC."""
        return f"http://{self.address}" if self.is_http else self.address

    @property
    def log(self) -> str:
        """Everything the process printed (stdout and stderr), oldest line first."""
        return "\n".join(self.lines)


def free_ports(names: Iterable[str], avoid: Collection[int] = ()) -> dict[str, int]:
    """A currently free port on 127.0.0.1 for each name (for tests beside a running stack),
    none of them in `avoid` (ports already handed out but not yet bound)."""
    ports: dict[str, int] = {}
    with contextlib.ExitStack() as held:
        for name in names:  # all held open at once, so no two names get the same port
            while True:
                sock = held.enter_context(socket.socket())
                sock.bind(("127.0.0.1", 0))
                if sock.getsockname()[1] not in avoid:
                    break
            ports[name] = sock.getsockname()[1]
    return ports


class Stack:
    """Starts registry services in dependency order and stops them all.

    `env` (default: os.environ) is the base environment of every child; the stack adds
    PAYNOW_INTERNAL_TOKEN (a fresh one unless given), PAYNOW_DATA_DIR (default ./data), each
    PAYNOW_<NAME>_PORT and each caller's PAYNOW_<CALLER>_<CALLEE>_ADDR unless already set.
    `echo`, if given, receives every output line prefixed with the service's name, in
    colour if `colour`. A generated token is written to PAYNOW_DATA_DIR/internal-token (0600)
    by `start`, so tools can call the services of this run.
    """

    def __init__(
        self,
        *,
        registry: Registry | None = None,
        services: Iterable[str] | None = None,
        env: Mapping[str, str] | None = None,
        data_dir: str | Path | None = None,
        ports: Mapping[str, int] | None = None,
        echo: Callable[[str], None] | None = None,
        console_logs: bool = False,
        colour: bool = False,
        startup_timeout_s: float = 30.0,
        grace_s: float = 15.0,
    ) -> None:
        self.registry = load_registry() if registry is None else registry
        self.order = self.registry.start_order(services)
        self.env = dict(os.environ if env is None else env)
        self.generated_token = "PAYNOW_INTERNAL_TOKEN" not in self.env
        self.env.setdefault("PAYNOW_INTERNAL_TOKEN", secrets.token_urlsafe(32))
        if data_dir is not None:
            self.env["PAYNOW_DATA_DIR"] = str(data_dir)
        self.env.setdefault("PAYNOW_DATA_DIR", "./data")
        self.env["PYTHONUNBUFFERED"] = "1"  # lines reach the prefixer as they are written
        self.ports = {name: self._port(name, ports or {}) for name in self.order}
        # With chosen ports (tests) the services' default metrics port (port + 1000) could be
        # taken, so they get free ones too; `make run` keeps the documented defaults.
        # Not one of the services' own ports: those were chosen and released before this
        # call, so the OS may offer them again, and a metrics server started first would
        # take the edge's port from it.
        spare = free_ports(self.order, avoid=set(self.ports.values())) if ports else {}
        self.metrics_ports: dict[str, int] = {}
        for name in self.order:
            prefix = f"PAYNOW_{name.upper()}_"
            self.env[f"{prefix}PORT"] = str(self.ports[name])
            metrics = self.env.get(f"{prefix}METRICS_PORT") or spare.get(name)
            self.metrics_ports[name] = int(metrics or self.ports[name] + 1000)
            self.env[f"{prefix}METRICS_PORT"] = str(self.metrics_ports[name])
            if console_logs:
                self.env.setdefault(f"{prefix}LOG_FORMAT", "console")
            for callee in self.registry.entry(name).calls:
                address = f"127.0.0.1:{self.ports[callee]}"
                self.env.setdefault(f"{prefix}{callee.upper()}_ADDR", address)
        self.processes: dict[str, ServiceProcess] = {}
        self._echo = echo
        self._width = max(len(n) for n in [*self.order, "stack"])
        self._prefixes = {
            name: self._prefix(name, _COLOURS[i % len(_COLOURS)] if colour else None)
            for i, name in enumerate(self.order)
        }
        self._prefixes["stack"] = self._prefix("stack", _STACK_COLOUR if colour else None)
        self._startup_timeout_s = startup_timeout_s
        self._grace_s = grace_s

    def _port(self, name: str, overrides: Mapping[str, int]) -> int:
        if name in overrides:
            return overrides[name]
        configured = self.env.get(f"PAYNOW_{name.upper()}_PORT")
        return int(configured) if configured else self.registry.port(name)

    def _prefix(self, name: str, colour: str | None) -> str:
        padded = f"{name:<{self._width}} |"
        return padded if colour is None else f"\033[{colour}m{padded}\033[0m"

    @property
    def token_file(self) -> Path:
        """Where `start` writes a generated internal token: PAYNOW_DATA_DIR/internal-token."""
        return Path(self.env["PAYNOW_DATA_DIR"]) / TOKEN_FILE

    def say(self, message: str) -> None:
        """Echo one line of the supervisor's own, prefixed `stack`."""
        if self._echo is not None:
            self._echo(f"{self._prefixes['stack']} {message}")

    def _write_token(self) -> None:
        self.token_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            os.fchmod(fd, 0o600)  # a file left by an older run keeps its mode otherwise
            out.write(self.env["PAYNOW_INTERNAL_TOKEN"] + "\n")

    async def start(self) -> None:
        """Start every service, each only once all it calls report SERVING.

        Raises StackError (the service's log in the message, also echoed) if one exits or
        does not report SERVING within the start-up timeout; already started ones keep
        running until `stop`.
        """
        if self.generated_token:
            self._write_token()
        for wave in self._waves():
            # Services whose callees all serve start together: the slow part of a start is
            # importing and migrating, which need not wait for a sibling.
            results = await asyncio.gather(
                *(self._start_one(name) for name in wave), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result

    def _waves(self) -> list[list[str]]:
        depth: dict[str, int] = {}
        for name in self.order:  # callees come first, so their depth is known
            calls = self.registry.entry(name).calls
            depth[name] = 1 + max((depth[c] for c in calls), default=-1)
        return [[n for n in self.order if depth[n] == d] for d in range(max(depth.values()) + 1)]

    async def _start_one(self, name: str) -> None:
        service = await self._launch(name)
        await self._wait_serving(service)
        self.say(f"{name} is SERVING on {service.url} (pid {service.pid})")

    async def _launch(self, name: str) -> ServiceProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.registry.entry(name).module,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,
            process_group=0,
            limit=1 << 20,
        )
        entry = self.registry.entry(name)
        service = ServiceProcess(name, self.ports[name], process, is_http=entry.is_http)
        self.processes[name] = service  # registered before any await, so stop() finds it
        service.reader = asyncio.create_task(self._read(service))
        return service

    async def _read(self, service: ServiceProcess) -> None:
        stream = service.process.stdout
        assert stream is not None
        while raw := await stream.readline():
            line = raw.decode("utf-8", "replace").rstrip("\n")
            service.lines.append(line)
            if self._echo is not None:
                self._echo(f"{self._prefixes[service.name]} {line}")

    async def _wait_serving(self, service: ServiceProcess) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._startup_timeout_s
        exited = asyncio.ensure_future(service.process.wait())
        pause = 0.02
        try:
            async with readiness_probe(self.registry.entry(service.name), service.port) as ready:
                while not exited.done():
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise self._failure(service, "did not report SERVING in time")
                    if await ready(min(1.0, remaining)):
                        return
                    # Wake early if the process dies; otherwise poll again, backing off.
                    await asyncio.wait({exited}, timeout=pause)
                    pause = min(pause * 2, 0.25)
        finally:
            exited.cancel()
        if service.reader is not None:
            await service.reader  # the whole log, up to the process's last line
        code = service.process.returncode
        raise self._failure(service, f"exited with code {code} during start-up")

    def _failure(self, service: ServiceProcess, what: str) -> StackError:
        message = f"{service.name} {what}; its log:\n{service.log or '(no output)'}"
        self.say(message.replace("\n", "\n    "))
        if self._echo is None:
            print(message, file=sys.stderr)  # a test's captured output shows why
        return StackError(message)

    def kill(self, name: str) -> None:
        """SIGKILL a service's whole process group at once (for crash tests)."""
        self._signal_group(self.processes[name].process, signal.SIGKILL)

    async def restart(self, name: str) -> ServiceProcess:
        """Start `name` again on its port (after it exited or was killed); wait for SERVING.

        Stops the old process first if it still runs. Raises StackError like `start`.
        """
        old = self.processes[name]
        await self._terminate(old)
        await self._start_one(name)
        return self.processes[name]

    async def wait_for_exit(self) -> ServiceProcess:
        """Return the first service process to exit (they are meant to run until stopped)."""
        waits = {asyncio.ensure_future(s.process.wait()): s for s in self.processes.values()}
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        return waits[next(iter(done))]

    async def keep_running(
        self, *, first_delay_s: float = 0.5, max_delay_s: float = 10.0, stable_s: float = 30.0
    ) -> None:
        """Restart any service that exits, until cancelled: announce it, back off, wait for
        SERVING again. The delay doubles from `first_delay_s` up to `max_delay_s` while a
        service keeps dying, and starts over once it has stayed up `stable_s`.

        Cancelling it (Ctrl-C, even mid-backoff) leaves every process to `stop`.
        """
        delays = dict.fromkeys(self.processes, first_delay_s)
        loop = asyncio.get_running_loop()
        started = dict.fromkeys(self.processes, loop.time())
        while True:
            died = await self.wait_for_exit()
            if died.reader is not None:
                await died.reader  # its last lines come before the announcement
            name = died.name
            if loop.time() - started[name] >= stable_s:
                delays[name] = first_delay_s
            delay = delays[name]
            delays[name] = min(delay * 2, max_delay_s)
            code = died.process.returncode
            self.say(f"{name} exited with code {code}; restarting in {delay:g} s")
            await asyncio.sleep(delay)  # the backoff itself, not a wait for a condition
            try:
                await self._start_one(name)
            except StackError:
                await self._terminate(self.processes[name])  # timed out, still running
            started[name] = loop.time()

    async def stop(self) -> None:
        """Stop every started service, the last started first: SIGTERM, then SIGKILL after
        the grace period. Returns when no child process is left."""
        for service in reversed(list(self.processes.values())):
            await self._terminate(service)

    async def _terminate(self, service: ServiceProcess) -> None:
        process = service.process
        if process.returncode is None:
            self._signal_group(process, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), self._grace_s)
            except TimeoutError:
                self.say(f"{service.name} still running after {self._grace_s:g}s; killing it")
                self._signal_group(process, signal.SIGKILL)
                await process.wait()
        if service.reader is not None:
            await service.reader
        self.say(f"{service.name} stopped (exit code {process.returncode})")

    @staticmethod
    def _signal_group(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
        # The whole group, so anything the service spawned goes too. The leader is not
        # reaped yet (returncode is None), so the group id cannot have been reused.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)


@contextlib.asynccontextmanager
async def start_stack(
    data_dir: str | Path | None = None,
    *,
    registry: Registry | None = None,
    services: Iterable[str] | None = None,
    env: Mapping[str, str] | None = None,
    ports: Mapping[str, int] | None = None,
    echo: Callable[[str], None] | None = None,
    startup_timeout_s: float = 30.0,
    grace_s: float = 15.0,
) -> AsyncIterator[Stack]:
    """Start the registry's services (arguments as for Stack), yield the Stack, stop them all.

    Waits on each service's readiness (_probes.py); raises StackError, after printing the
    failing process's log, if one does not become ready.
    """
    stack = Stack(
        registry=registry,
        services=services,
        env=env,
        data_dir=data_dir,
        ports=ports,
        echo=echo,
        startup_timeout_s=startup_timeout_s,
        grace_s=grace_s,
    )
    try:
        await stack.start()
        yield stack
    finally:
        await stack.stop()
