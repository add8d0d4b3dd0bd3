"""The edge spreads calls over every address a backend name resolves to (round_robin), as
framework.connect() does: two library backends behind one `ipv4:` target, real processes."""

from __future__ import annotations

import collections
import http.client
import os
import sys
from pathlib import Path

import pytest

from tests.edge.library import (
    SERVICE,
    compile_library,
    free_port,
    pythonpath,
    running,
    wait_backend_serving,
)

pytestmark = pytest.mark.e2e


def test_calls_are_spread_over_every_backend_address(tmp_path: Path) -> None:
    descriptor_set = compile_library(tmp_path)
    first, second, port = free_port(), free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": pythonpath(tmp_path), "PAYNOW_EDGE_LOG_FORMAT": "json"}
    backend = [sys.executable, "-m", "tests.edge.library_backend", "--port"]
    target = f"ipv4:127.0.0.1:{first},127.0.0.1:{second}"
    edge = [
        sys.executable, "-m", "services.edge", "--descriptor-set", str(descriptor_set),
        "--backend", f"{SERVICE}={target}", "--default-access", "public", "--port", str(port),
    ]  # fmt: skip
    with (
        running([*backend, str(first)], env) as one,
        running([*backend, str(second)], env) as two,
    ):
        wait_backend_serving(first)
        wait_backend_serving(second)
        with running(edge, env) as process:
            process.wait_for('"edge_started"')
            answered: collections.Counter[str] = collections.Counter()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            for _ in range(20):
                connection.request("GET", "/v1/shelves/s1/theme")
                response = connection.getresponse()
                assert response.status == 200, response.read()
                response.read()
                answered[response.headers["grpc-metadata-x-backend-pid"]] += 1
            connection.close()
    # pick_first would send all twenty to one process.
    assert set(answered) == {str(one.popen.pid), str(two.popen.pid)}
    assert min(answered.values()) >= 5
