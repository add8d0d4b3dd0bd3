"""Every request message with field rules rejects a bad value and accepts a good one."""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path
from typing import Any

import protovalidate
import pytest
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.descriptor_pool import Default as default_pool

import paynow

from .descriptors import paynow_files

# Every generated module, so every request message is in the default pool (a service added
# by the scaffold is found without editing this file).
for _module in pkgutil.walk_packages(paynow.__path__, "paynow."):
    if _module.name.endswith("_pb2"):
        importlib.import_module(_module.name)

VALIDATION = Path(__file__).parent / "validation"


def _load_examples() -> dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]]]]:
    """validation/<package>.json: per request message, a valid request as proto3 JSON and
    named bad variants (the valid request with these top-level keys replaced)."""
    examples = {}
    for file in sorted(VALIDATION.glob("*.json")):
        package = file.stem
        for message, cases in json.loads(file.read_text()).items():
            examples[f"{package}.{message}"] = (cases["valid"], cases["invalid"])
    return examples


EXAMPLES = _load_examples()

validator = protovalidate.Validator()


def _has_rules(descriptor: Descriptor, seen: frozenset[str] = frozenset()) -> bool:
    """True if the message, or a message field inside it, carries buf.validate options."""
    if descriptor.full_name in seen:
        return False
    proto_options = descriptor.GetOptions().ListFields()
    if any(field.full_name.startswith("buf.validate") for field, _ in proto_options):
        return True
    for field in descriptor.fields:
        if any(f.full_name.startswith("buf.validate") for f, _ in field.GetOptions().ListFields()):
            return True
        if field.message_type is not None and _has_rules(
            field.message_type, seen | {descriptor.full_name}
        ):
            return True
    return False


def _request_messages_with_rules() -> list[str]:
    names = []
    for file in paynow_files():
        for message in file.message_type:
            if not message.name.endswith("Request"):
                continue
            full_name = f"{file.package}.{message.name}"
            if _has_rules(default_pool().FindMessageTypeByName(full_name)):
                names.append(full_name)
    return sorted(names)


def _build(full_name: str, values: dict[str, Any]) -> Any:
    cls = message_factory.GetMessageClass(default_pool().FindMessageTypeByName(full_name))
    return json_format.ParseDict(values, cls())


def test_every_request_with_rules_has_examples() -> None:
    """A rule-bearing request without examples in validation/ fails, naming the message."""
    missing = sorted(set(_request_messages_with_rules()) - set(EXAMPLES))
    assert not missing, f"add examples for: {', '.join(missing)}"


@pytest.mark.parametrize("full_name", sorted(EXAMPLES))
def test_valid_request_is_accepted(full_name: str) -> None:
    """The example request passes every rule."""
    good, _ = EXAMPLES[full_name]
    assert validator.collect_violations(_build(full_name, good)) == []


BAD_CASES = [
    (full_name, what, change)
    for full_name, (_, bad) in sorted(EXAMPLES.items())
    for what, change in bad.items()
]


@pytest.mark.parametrize(
    ("full_name", "what", "change"),
    BAD_CASES,
    ids=[f"{name.rsplit('.', 1)[1]}-{what}" for name, what, _ in BAD_CASES],
)
def test_bad_value_is_rejected(full_name: str, what: str, change: dict[str, Any]) -> None:
    """Each bad variant breaks at least one rule."""
    good, _ = EXAMPLES[full_name]
    violations = validator.collect_violations(_build(full_name, {**good, **change}))
    assert violations, f"{full_name} accepted a request with {what}"
