"""The image's entry point: run one PayNow service, migrate its database, or probe it.

    docker run paynow account             # python -m services.account (the registry's module)
    docker run paynow migrate account     # upgrade account's schema, then exit
    docker run paynow healthcheck         # 0 if the service this container runs is ready

`healthcheck` finds the service from PID 1's command line, so one HEALTHCHECK fits every
service the image runs.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.framework import Database, RegistryError, ServiceEntry, load_registry

USAGE = "usage: SERVICE [ARGS…] | migrate SERVICE | healthcheck"
_PROBE_TIMEOUT_S = 3.0


def _entry(name: str) -> ServiceEntry:
    try:
        return load_registry().entry(name)
    except RegistryError as error:
        sys.exit(f"entrypoint: {error}")


def _port(entry: ServiceEntry) -> int:
    # The same override the service itself reads; the registry's port otherwise.
    return int(os.environ.get(f"PAYNOW_{entry.name.upper()}_PORT", entry.port))


def migrate(name: str) -> None:
    """Upgrade the service's database to its newest revision, under the migration lock."""
    entry = _entry(name)
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"entrypoint: {entry.module} is not a package")
    migrations = Path(next(iter(spec.submodule_search_locations))) / "migrations"
    if not migrations.is_dir():
        sys.exit(f"entrypoint: {name} has no migrations")
    variable = f"PAYNOW_{name.upper()}_DATABASE_URL"
    url = os.environ.get(variable)
    if not url:
        sys.exit(f"entrypoint: {variable}: required but not set")

    async def run() -> None:
        database = Database(url, service=name)
        try:
            await database.migrate(migrations)
        finally:
            await database.dispose()

    asyncio.run(run())


def running_service(cmdline: Path = Path("/proc/1/cmdline")) -> ServiceEntry:
    """The registry service PID 1 runs; exits naming the module when there is none."""
    # PID 1 is the service after the exec in main(): `python -m services.<name> …`.
    argv = cmdline.read_bytes().split(b"\0")
    module = argv[argv.index(b"-m") + 1].decode() if b"-m" in argv else ""
    for entry in load_registry().services.values():
        if entry.module == module:
            return entry
    sys.exit(f"entrypoint: PID 1 runs no registry service ({module or 'no -m module'})")


def healthcheck() -> int:
    """0 when the running service is ready (grpc.health.v1 SERVING, or its HTTP health 200)."""
    entry = running_service()
    port = _port(entry)
    if entry.http_health is not None:
        url = f"http://127.0.0.1:{port}{entry.http_health}"
        try:
            with urllib.request.urlopen(url, timeout=_PROBE_TIMEOUT_S) as reply:
                return 0 if reply.status == 200 else 1
        except OSError:
            return 1
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=_PROBE_TIMEOUT_S
            )
        except grpc.RpcError:
            return 1
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def main(argv: list[str]) -> int:
    """Dispatch on the first argument; exec replaces this process for a service."""
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "healthcheck":
        return healthcheck()
    if command == "migrate":
        if len(rest) != 1:
            print(USAGE, file=sys.stderr)
            return 2
        migrate(rest[0])
        return 0
    entry = _entry(command)
    # exec, not a child: the service becomes PID 1 and receives SIGTERM itself, which
    # starts its graceful drain. execv returns only by raising OSError.
    os.execv(sys.executable, [sys.executable, "-m", entry.module, *rest])  # noqa: S606
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
