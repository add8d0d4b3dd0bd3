"""The exchange format: example and consumer-contract files, their steps, and templates.

One step is one call: `rpc` (`package.Service/Method`), `as` (the caller), `request` (proto3
JSON), then one of `response` (expected fields, with matchers), `error` (code and
ErrorInfo reason) or `stream` (expected messages of a server stream), and `capture` (values
later steps use as `{{name}}`). See tests/contracts/examples/README.md.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from google.protobuf import descriptor, descriptor_pb2, descriptor_pool, message, message_factory

from services.framework import new_id

__all__ = [
    "CONSUMERS_DIR",
    "DESCRIPTOR_SET",
    "EXAMPLES_DIR",
    "Contract",
    "Example",
    "Exchange",
    "FormatError",
    "Schema",
    "Step",
    "Variables",
    "load_contract",
    "load_example",
    "render",
]

ROOT = Path(__file__).resolve().parents[3]
DESCRIPTOR_SET = ROOT / "generated" / "paynow" / "descriptor_set.binpb"
EXAMPLES_DIR = ROOT / "tests" / "contracts" / "examples"
CONSUMERS_DIR = ROOT / "tests" / "contracts" / "consumers"

_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")
_STEP_KEYS = {
    "rpc",
    "as",
    "request",
    "response",
    "error",
    "stream",
    "maxMessages",
    "capture",
    "hold",
}


class FormatError(ValueError):
    """A file that does not follow the format (named with the file and the place)."""


class Schema:
    """The PayNow descriptor set as a pool: methods by full name, message classes."""

    def __init__(self, pool: descriptor_pool.DescriptorPool, files: list[str]) -> None:
        self.pool = pool
        self._files = files

    @classmethod
    @cache
    def load(cls, path: Path = DESCRIPTOR_SET) -> Schema:
        files = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()).file
        pool = descriptor_pool.DescriptorPool()
        for file in files:
            pool.Add(file)
        return cls(pool, [f.name for f in files if f.package.startswith("paynow.")])

    def rpcs(self) -> Iterator[str]:
        """Every PayNow RPC as `package.Service/Method`."""
        for name in self._files:
            for service in self.pool.FindFileByName(name).services_by_name.values():
                for method in service.methods:
                    yield f"{service.full_name}/{method.name}"

    def method(self, rpc: str) -> descriptor.MethodDescriptor:
        service, _, name = rpc.partition("/")
        try:
            return self.pool.FindServiceByName(service).methods_by_name[name]
        except KeyError:
            raise FormatError(f"{rpc}: no such RPC in the descriptor set") from None

    def message_class(self, message_type: descriptor.Descriptor) -> type[message.Message]:
        return message_factory.GetMessageClass(message_type)


def provider_of(rpc: str) -> str:
    """The service (process) that serves an RPC: `account` for `paynow.account.v1.…`."""
    return rpc.split(".")[1]


def short_name(rpc: str) -> str:
    return rpc.rpartition("/")[2]


@dataclass(frozen=True)
class Step:
    """One call, with what it must answer and what to capture from the answer."""

    rpc: str
    caller: Mapping[str, str]
    request: Mapping[str, Any]
    response: Any = None
    error: Mapping[str, Any] | None = None
    stream: list[Any] | None = None
    max_messages: int | None = None
    capture: Mapping[str, str] = field(default_factory=dict)
    # A set-up step that is not sent: its idempotency key is held as if the call still ran.
    hold: bool = False


@dataclass(frozen=True)
class Exchange:
    """Set-up steps (`given`), then the call the exchange is about."""

    name: str
    given: tuple[Step, ...]
    call: Step
    source: str

    @property
    def rpc(self) -> str:
        return self.call.rpc


@dataclass(frozen=True)
class Example:
    """tests/contracts/examples/<service>/<Rpc>.json: exchanges of one RPC."""

    rpc: str
    exchanges: tuple[Exchange, ...]
    path: Path


@dataclass(frozen=True)
class Contract:
    """tests/contracts/consumers/<consumer>-<provider>.json: what a consumer relies on."""

    consumer: str
    provider: str
    interactions: tuple[Exchange, ...]
    path: Path

    def interaction(self, name: str) -> Exchange:
        for interaction in self.interactions:
            if interaction.name == name:
                return interaction
        raise KeyError(f"{self.path.name} has no interaction named {name!r}")


def _caller(raw: Any, where: str) -> Mapping[str, str]:
    if raw in (None, "anonymous"):
        return {}
    if not isinstance(raw, dict) or not set(raw) <= {"service", "user", "merchant"}:
        raise FormatError(f"{where}: `as` is anonymous or {{service, user?, merchant?}}")
    if ("user" in raw or "merchant" in raw) and "service" not in raw:
        raise FormatError(f"{where}: a user or merchant is passed on by a service")
    return dict(raw)


def _step(raw: Any, where: str, *, default_rpc: str | None, schema: Schema) -> Step:
    if not isinstance(raw, dict):
        raise FormatError(f"{where}: a step is an object")
    unknown = set(raw) - _STEP_KEYS - {"name", "description", "given"}
    if unknown:
        raise FormatError(f"{where}: unknown keys {sorted(unknown)}")
    rpc = raw.get("rpc", default_rpc)
    if not rpc:
        raise FormatError(f"{where}: `rpc` is required")
    method = schema.method(rpc)
    outcomes = [key for key in ("response", "error", "stream") if key in raw]
    if len(outcomes) > 1:
        raise FormatError(f"{where}: at most one of response, error, stream")
    if "stream" in raw and not method.server_streaming:
        raise FormatError(f"{where}: {rpc} is not a server stream")
    return Step(
        rpc=rpc,
        caller=_caller(raw.get("as"), where),
        request=raw.get("request", {}),
        response=raw.get("response"),
        error=raw.get("error"),
        stream=raw.get("stream"),
        max_messages=raw.get("maxMessages"),
        capture=raw.get("capture", {}),
        hold=bool(raw.get("hold", False)),
    )


def _exchange(raw: Any, where: str, *, rpc: str | None, source: str, schema: Schema) -> Exchange:
    if not isinstance(raw, dict) or not raw.get("name"):
        raise FormatError(f"{where}: an exchange is an object with a `name`")
    where = f"{where} ({raw['name']})"
    given = tuple(
        _step(step, f"{where} given[{i}]", default_rpc=None, schema=schema)
        for i, step in enumerate(raw.get("given", []))
    )
    call = _step(raw, where, default_rpc=rpc, schema=schema)
    if rpc is not None and call.rpc != rpc:
        raise FormatError(f"{where}: the exchange calls {call.rpc}, not the file's {rpc}")
    return Exchange(raw["name"], given, call, source)


def load_example(path: Path, schema: Schema | None = None) -> Example:
    schema = schema or Schema.load()
    raw = json.loads(path.read_text(encoding="utf-8"))
    where = str(path.resolve().relative_to(EXAMPLES_DIR))
    rpc = raw.get("rpc")
    if not rpc:
        raise FormatError(f"{where}: `rpc` is required")
    exchanges = tuple(
        _exchange(item, f"{where} exchanges[{i}]", rpc=rpc, source=where, schema=schema)
        for i, item in enumerate(raw.get("exchanges", []))
    )
    if not exchanges:
        raise FormatError(f"{where}: no exchanges")
    return Example(rpc, exchanges, path)


def load_contract(path: Path, schema: Schema | None = None) -> Contract:
    schema = schema or Schema.load()
    raw = json.loads(path.read_text(encoding="utf-8"))
    where = path.name
    for key in ("consumer", "provider", "interactions"):
        if key not in raw:
            raise FormatError(f"{where}: `{key}` is required")
    interactions = tuple(
        _exchange(item, f"{where} interactions[{i}]", rpc=None, source=where, schema=schema)
        for i, item in enumerate(raw["interactions"])
    )
    names = [interaction.name for interaction in interactions]
    if len(set(names)) != len(names):
        raise FormatError(f"{where}: interaction names must be unique")
    for interaction in interactions:
        if provider_of(interaction.rpc) != raw["provider"]:
            raise FormatError(f"{where}: {interaction.rpc} is not served by {raw['provider']}")
    return Contract(raw["consumer"], raw["provider"], interactions, path)


def _unique(name: str) -> str:
    if name.lower().endswith("email"):
        return f"{new_id('usr')}@example.com"
    return f"{name}-{secrets.token_hex(8)}"


class Variables:
    """Captured values of one exchange, and `unique.*` values made on first use."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self.values: dict[str, Any] = dict(values or {})

    def __getitem__(self, name: str) -> Any:
        if name not in self.values:
            if not name.startswith("unique."):
                raise FormatError(f"{{{{{name}}}}} is used before a step captures it")
            self.values[name] = _unique(name.removeprefix("unique."))
        return self.values[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.values[name] = value


def render(value: Any, variables: Variables) -> Any:
    """`value` with every `{{name}}` replaced: a whole-string template keeps the value's JSON
    type, one inside a longer string is formatted into it."""
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value)
        if whole:
            return variables[whole.group(1)]
        return _TEMPLATE.sub(lambda m: str(variables[m.group(1)]), value)
    if isinstance(value, dict):
        return {key: render(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, variables) for item in value]
    return value


def whole_template(value: str) -> str | None:
    """The variable's name if `value` is exactly one `{{name}}`."""
    found = _TEMPLATE.fullmatch(value)
    return found.group(1) if found else None


def template_names(value: str) -> list[str]:
    return _TEMPLATE.findall(value)


def template_pattern(value: str) -> re.Pattern[str]:
    """A regex matching what `value` renders to, one group per template."""
    parts, last = [], 0
    for found in _TEMPLATE.finditer(value):
        parts.append(re.escape(value[last : found.start()]))
        parts.append("(.+?)")
        last = found.end()
    parts.append(re.escape(value[last:]))
    return re.compile("".join(parts))
