"""Golden HTTP exchanges through the edge, with the templates and matchers of the gRPC
examples: the format and the routes (`_http_format.py`), and the replayer
(`_http_replay.py`). See tests/contracts/rest/README.md.
"""

from ._http_format import (
    REST_DIR,
    Golden,
    HttpExchange,
    HttpStep,
    Route,
    golden_path,
    load_golden,
    routes,
)
from ._http_replay import replay_http

__all__ = [
    "REST_DIR",
    "Golden",
    "HttpExchange",
    "HttpStep",
    "Route",
    "golden_path",
    "load_golden",
    "replay_http",
    "routes",
]
