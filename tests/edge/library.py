"""The test library API: compiled at test time, and its backend started as a real process.

Shared by the edge's end-to-end tests and scripts/bench_edge.py, so both exercise the same
proto and backend. Compilation follows scripts/gen_protos.py: the same include paths and the
buf/validate descriptor set, into a temporary directory put on the backend's PYTHONPATH.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.framework._stack import free_ports

ROOT = Path(__file__).resolve().parents[2]
PROTOS = Path(__file__).resolve().parent / "protos"
LIBRARY_PROTO = "testing/library/v1/library.proto"
SERVICE = "testing.library.v1.LibraryService"


def _gen_protos() -> object:
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compile_library(out_dir: Path) -> Path:
    """Compile the library proto into `out_dir` (Python modules, importable from there) and
    return its descriptor set (with imports and source info)."""
    gen = _gen_protos()
    gen.assemble_deps()  # type: ignore[attr-defined]
    import grpc_tools

    well_known = Path(next(iter(grpc_tools.__path__))) / "_proto"
    descriptor_set = out_dir / "library.binpb"
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTOS}",
        f"--proto_path={ROOT / 'protos'}",
        f"--proto_path={gen.DEPS}",  # type: ignore[attr-defined]
        f"--proto_path={well_known}",
        f"--descriptor_set_in={gen.VALIDATE_SET}",  # type: ignore[attr-defined]
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--descriptor_set_out={descriptor_set}",
        "--include_imports",
        "--include_source_info",
        LIBRARY_PROTO,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"protoc failed: {result.stderr}")
    for directory in ("testing", "testing/library", "testing/library/v1"):
        (out_dir / directory / "__init__.py").touch()
    return descriptor_set


def free_port() -> int:
    """A port nothing listens on right now (bound to 0, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pythonpath(compiled: Path) -> str:
    """PYTHONPATH for a process that imports the compiled library and this repository."""
    return os.pathsep.join([str(compiled), str(ROOT), os.environ.get("PYTHONPATH", "")])


class Process:
    """A child process whose output a thread collects, so the pipe never fills, and whose
    lines can be awaited (start-up messages) without polling or sleeping."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            with self._changed:
                self.lines.append(raw.decode(errors="replace"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, needle: str, timeout_s: float = 30.0) -> str:
        """The first output line containing `needle`; raises TimeoutError with the output
        when it does not come in time or the process exits first."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(needle in line for line in self.lines) or not self._reader.is_alive(),
                timeout_s,
            )
            match = next((line for line in self.lines if needle in line), None)
        if not found or match is None:
            raise TimeoutError(f"{needle!r} never appeared; output:\n{self.output()}")
        return match

    def output(self) -> str:
        """Everything the process printed so far."""
        with self._changed:
            return "".join(self.lines)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        self.popen.terminate()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        self._reader.join(5)


@contextlib.contextmanager
def running(command: list[str], env: dict[str, str]) -> Iterator[Process]:
    """Run `command` from the repository root; stop it on exit."""
    process = Process(command, env)
    try:
        yield process
    finally:
        process.stop()


def wait_backend_serving(port: int, timeout_s: float = 20.0) -> None:
    """Return once the backend's grpc.health.v1 Watch says SERVING (no polling, no sleep)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=SERVICE), timeout=timeout_s, wait_for_ready=True
        )
        for reply in stream:
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                stream.cancel()
                return
    raise TimeoutError("the library backend never reported SERVING")


@contextlib.contextmanager
def library_edge(
    out_dir: Path, *, env: Mapping[str, str] | None = None, edge_args: Sequence[str] = ()
) -> Iterator[tuple[int, Process]]:
    """The test library's backend and an edge in front of it, as real processes.

    Compiles the library into `out_dir`, starts the backend and waits until it is SERVING,
    starts the edge (public access, `edge_args` added) and waits for `edge_started`; yields
    the edge's port and process. `env` adds variables to both.
    """
    descriptor_set = compile_library(out_dir)
    # Held together while chosen, so the three differ (two free_port() calls need not).
    chosen = free_ports(["backend", "edge", "metrics"])
    backend_port, port = chosen["backend"], chosen["edge"]
    environ = {
        **os.environ,
        "PYTHONPATH": pythonpath(out_dir),
        "PAYNOW_EDGE_LOG_FORMAT": "json",
        "PAYNOW_EDGE_METRICS_PORT": str(chosen["metrics"]),
        **(env or {}),
    }
    environ.pop("PAYNOW_INTERNAL_TOKEN", None)
    backend_cmd = [sys.executable, "-m", "tests.edge.library_backend", "--port", str(backend_port)]
    edge_cmd = [
        sys.executable, "-m", "services.edge",
        "--descriptor-set", str(descriptor_set),
        "--backend", f"{SERVICE}=127.0.0.1:{backend_port}",
        "--default-access", "public",
        "--port", str(port),
        *edge_args,
    ]  # fmt: skip
    with running(backend_cmd, environ) as backend:
        try:
            wait_backend_serving(backend_port)
        except Exception:
            print(backend.output())
            raise
        with running(edge_cmd, environ) as process:
            process.wait_for('"edge_started"')
            yield port, process
