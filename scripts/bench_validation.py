"""Measure what protovalidate costs per request, beside decoding the same request.

    python scripts/bench_validation.py [--rounds N] [--write docs/benchmarks.md]

Both figures come from one run, so their ratio holds on a shared, noisy machine even when
the absolute microseconds do not.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import protovalidate
from google.protobuf.message import Message

from paynow.auth.v1 import auth_service_pb2
from paynow.merchant.v1 import payment_service_pb2

# The repository root is on the path through the project's editable install.
from scripts.bench_report import write_section


def _per_call_us(fn: Callable[[], object], calls: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def measure(name: str, request: Message, calls: int, rounds: int) -> str:
    validator = protovalidate.Validator()
    assert not validator.collect_violations(request), f"{name} example must be valid"
    wire = request.SerializeToString()
    cls = type(request)
    validate_us = _per_call_us(lambda: validator.collect_violations(request), calls, rounds)
    decode_us = _per_call_us(lambda: cls.FromString(wire), calls, rounds)
    return (
        f"| {name} | {validate_us:.2f} µs | {decode_us:.2f} µs | {validate_us / decode_us:.1f}x |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--write", type=Path, help="also write the table into this Markdown file")
    args = parser.parse_args()
    examples: list[tuple[str, Message]] = [
        (
            "CreatePaymentRequest",
            payment_service_pb2.CreatePaymentRequest(
                amount_minor=1999, currency_code="EUR", description="tea", idempotency_key="o-1"
            ),
        ),
        (
            "RegisterRequest (email rule)",
            auth_service_pb2.RegisterRequest(
                email="ada@example.com",
                password="correct horse battery staple",
                display_name="Ada",
            ),
        ),
    ]
    lines = [
        f"protovalidate {version('protovalidate')} per request, median of {args.rounds} rounds:",
        "",
        "| request | validate | decode from bytes | validate / decode |",
        "|---|---|---|---|",
        *(measure(name, request, args.calls, args.rounds) for name, request in examples),
    ]
    print("\n".join(lines))
    if args.write is not None:
        write_section(args.write, "validation", "\n".join(lines))


if __name__ == "__main__":
    main()
