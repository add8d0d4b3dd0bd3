"""Per-method policy, computed once at start-up from the registered service descriptors."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from paynow.api.v1 import annotations_pb2

__all__ = ["MethodPolicy", "build_policies", "field_path"]

_FIELD_MASK = "google.protobuf.FieldMask"
_IDEMPOTENCY_KEY = "idempotency_key"


@dataclasses.dataclass(frozen=True, slots=True)
class MethodPolicy:
    """What the middleware needs to know about one method, without touching descriptors."""

    service: str
    method: str
    allow: frozenset[int]
    # For an update with `update_mask`: the request field holding the resource (AIP-134).
    resource_field: str | None = None
    # For a unary method whose request has `idempotency_key`: the response class, so a
    # stored response can be replayed (see _idempotency.py).
    replay_as: type[Message] | None = None
    # Server streaming: its metrics carry grpc_type="server_stream".
    streaming: bool = False

    def counts(self, path: str, masked: Iterable[str]) -> bool:
        """Whether a violation at `path` counts, given the request's update_mask paths."""
        if self.resource_field is None or not path.startswith(self.resource_field + "."):
            return True
        relative = path[len(self.resource_field) + 1 :]
        return any(relative == p or relative.startswith(p + ".") for p in masked)


def _resource_field(method: MethodDescriptor) -> str | None:
    request = method.input_type
    mask = request.fields_by_name.get("update_mask")
    if mask is None or mask.message_type is None or mask.message_type.full_name != _FIELD_MASK:
        return None
    candidates = [
        f for f in request.fields if f.message_type is not None and f.name != "update_mask"
    ]
    for field in candidates:
        if (
            field.message_type is not None
            and field.message_type.full_name == method.output_type.full_name
        ):
            return str(field.name)
    return str(candidates[0].name) if len(candidates) == 1 else None


def _replay_as(method: MethodDescriptor) -> type[Message] | None:
    if method.server_streaming or _IDEMPOTENCY_KEY not in method.input_type.fields_by_name:
        return None
    return message_factory.GetMessageClass(method.output_type)


def build_policies(
    services: Iterable[ServiceDescriptor], default_access: int
) -> dict[str, MethodPolicy]:
    """Map each `/package.Service/Method` path to its policy.

    Raises ValueError for client-streaming methods, which the middleware chain cannot guard.
    """
    policies: dict[str, MethodPolicy] = {}
    for service in services:
        for method in service.methods:
            if method.client_streaming:
                raise ValueError(f"{method.full_name}: client streaming is not supported")
            options = method.GetOptions()
            allow: frozenset[int] = frozenset()
            if options.HasExtension(annotations_pb2.access):
                allow = frozenset(options.Extensions[annotations_pb2.access].allow)
            policies[f"/{service.full_name}/{method.name}"] = MethodPolicy(
                service=service.full_name,
                method=method.name,
                allow=allow or frozenset({default_access}),
                resource_field=_resource_field(method),
                replay_as=_replay_as(method),
                streaming=method.server_streaming,
            )
    return policies


def field_path(violation: Any) -> str:
    """`account.display_name` (or `items[2].name`) for a protovalidate 2.x violation."""
    path = violation.proto.field
    if path is None:
        return ""
    parts: list[str] = []
    for element in path.elements:
        name = str(element.field_name)
        subscript = getattr(element, "subscript", None)
        if subscript is not None:
            key = getattr(subscript, "value", subscript)
            name += f"[{key!r}]" if isinstance(key, str) else f"[{key}]"
        parts.append(name)
    return ".".join(parts)
