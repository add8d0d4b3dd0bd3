"""Contract exchanges: the format of tests/contracts/examples and consumers, its loader,
matcher and replayer, the real providers in process, and a stub provider for consumers.

A package rather than one module, split by job (format, matching, replay, providers, stub)
as STYLE.md asks of modules past about 300 lines.
"""

from ._format import (
    CONSUMERS_DIR,
    DESCRIPTOR_SET,
    EXAMPLES_DIR,
    Contract,
    Example,
    Exchange,
    FormatError,
    Schema,
    Step,
    Variables,
    load_contract,
    load_example,
    provider_of,
    render,
    short_name,
)
from ._match import check, example_value, request_problems
from ._providers import provider_stack
from ._replay import ExchangeFailed, Providers, error_info, replay
from ._stub import StubProvider, serve_stub

__all__ = [
    "CONSUMERS_DIR",
    "DESCRIPTOR_SET",
    "EXAMPLES_DIR",
    "Contract",
    "Example",
    "Exchange",
    "ExchangeFailed",
    "FormatError",
    "Providers",
    "Schema",
    "Step",
    "StubProvider",
    "Variables",
    "check",
    "error_info",
    "example_value",
    "load_contract",
    "load_example",
    "provider_of",
    "provider_stack",
    "render",
    "replay",
    "request_problems",
    "serve_stub",
    "short_name",
]
