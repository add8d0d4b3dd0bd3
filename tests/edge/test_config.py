"""The edge's settings: backend targets are checked when the edge starts."""

from __future__ import annotations

import pytest

from services.edge.config import load_edge_settings
from services.framework import ConfigError


@pytest.mark.parametrize(
    "target",
    ["127.0.0.1:50061", "dns:///account.paynow.svc:50061", "[::1]:9", "ipv4:10.0.0.1:1,10.0.0.2:2"],
)
def test_grpc_targets_are_accepted(target: str) -> None:
    """Every target form the edge's channels understand passes the start-up check."""
    settings = load_edge_settings(["--backend", f"a.B={target}"], {})
    assert settings.backends == {"a.B": target}


@pytest.mark.parametrize("target", ["host:", "host:70000", "dns:///:1", "ipv4:1.2.3.4"])
def test_a_malformed_backend_target_stops_the_edge_with_its_name(target: str) -> None:
    """A target the channel could not dial is a ConfigError at start, not a failing call."""
    with pytest.raises(ConfigError, match="gRPC target"):
        load_edge_settings([], {"PAYNOW_EDGE_DEFAULT_BACKEND": target})
