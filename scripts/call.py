"""Call any RPC of a running PayNow service with JSON, or list its methods: `buf curl` with
the local address and the internal credential filled in, the schema from server reflection.

    python scripts/call.py account                          # list account's methods
    python scripts/call.py account GetAccount '{"id": "acc_…"}' --user acc_…
    python scripts/call.py merchant PaymentService/GetPayment '{"id": "pay_…"}' --merchant mer_…

The address is 127.0.0.1 and the registry's port (PAYNOW_<SERVICE>_PORT overrides); the
credential is PAYNOW_INTERNAL_TOKEN, or else the one `make run` wrote to
$PAYNOW_DATA_DIR/internal-token (default ./data). Calls go as the service `cli`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from services.framework._registry import RegistryError, load_registry
from services.framework._stack import TOKEN_FILE

CALLER = "cli"


class CallError(Exception):
    """The call cannot be made as asked; the message says what to do instead."""


def _buf() -> str:
    beside = Path(sys.executable).parent / "buf"  # the buf-bin wheel's, in .venv/bin
    found = str(beside) if beside.exists() else shutil.which("buf")
    if found is None:
        raise CallError("buf not found: run `make setup`")
    return found


def _address(service: str) -> str:
    registry = load_registry()
    try:
        entry = registry.entry(service)
    except RegistryError as error:
        raise CallError(f"{error} (services: {', '.join(registry.services)})") from None
    if entry.is_http:
        raise CallError(f"{service} serves HTTP, not gRPC: use curl or `make demo`")
    port = os.environ.get(f"PAYNOW_{service.upper()}_PORT") or str(registry.port(service))
    return f"127.0.0.1:{port}"


def _token() -> str:
    if token := os.environ.get("PAYNOW_INTERNAL_TOKEN"):
        return token
    path = Path(os.environ.get("PAYNOW_DATA_DIR", "./data")) / TOKEN_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise CallError(
            f"no internal token: set PAYNOW_INTERNAL_TOKEN, or start the stack with `make run`"
            f" (it writes {path})"
        ) from None


def _methods(base: list[str], url: str) -> list[str]:
    listed = subprocess.run(
        [*base, "--list-methods", url], capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        raise CallError(f"cannot list the methods at {url}: {listed.stderr.strip()}")
    return listed.stdout.split()


def _full_method(method: str, methods: list[str]) -> str:
    """`GetAccount`, `AccountService/GetAccount` or the full name → the full name."""
    matches = [m for m in methods if m == method or m.endswith(f".{method}")]
    matches = matches or [m for m in methods if m.rsplit("/", 1)[-1] == method]
    if len(matches) != 1:
        what = "is ambiguous" if matches else "is not served"
        raise CallError(f"{method} {what}; the methods:\n  " + "\n  ".join(matches or methods))
    return matches[0]


def build_command(args: argparse.Namespace) -> list[str]:
    """The `buf curl` command line for the parsed arguments (listing, or one call)."""
    address = _address(args.service)
    headers = {
        "x-paynow-internal-token": _token(),
        "x-paynow-caller-service": CALLER,
    }
    if args.user:
        headers["x-paynow-user-id"] = args.user
    if args.merchant:
        headers["x-paynow-merchant-id"] = args.merchant
    base = [_buf(), "curl", "--protocol", "grpc", "--http2-prior-knowledge"]
    base += [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
    url = f"http://{address}"
    if not args.method:
        return [*base, "--list-methods", url]
    method = _full_method(args.method, _methods(base, url))
    return [*base, "--data", args.data or "{}", f"{url}/{method}"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns buf curl's exit status (2 for a usage problem)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", help="a gRPC service of services/registry.toml")
    parser.add_argument("method", nargs="?", help="the RPC (GetAccount); omit it to list them")
    parser.add_argument("data", nargs="?", help="the request as proto3 JSON (default {})")
    parser.add_argument("--user", help="act for this user (x-paynow-user-id: acc_…)")
    parser.add_argument("--merchant", help="act for this merchant (x-paynow-merchant-id: mer_…)")
    args = parser.parse_args(argv)
    try:
        command = build_command(args)
    except CallError as error:
        print(f"call: {error}", file=sys.stderr)
        return 2
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
