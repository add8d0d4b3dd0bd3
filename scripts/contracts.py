"""Breaking-change checks of the contracts against a committed baseline.

    python scripts/contracts.py breaking    # exit 1 and name each break found
    python scripts/contracts.py baseline    # move the baseline to the current protos

Three checks, because no single tool sees all of a contract:
- buf breaking (FILE rules: wire and JSON compatibility of every proto element);
- validation: a protovalidate rule added or tightened on an existing field turns requests
  that used to pass into INVALID_ARGUMENT, which buf does not look at;
- HTTP and REST: buf ignores google.api.http, so every binding (verb and path) of the
  baseline must still exist, and the OpenAPI document the edge generates must keep each
  route's parameters and response fields.
The baseline lives in protos/baseline/ and moves only on purpose: `make contract-baseline`,
committed with the reason (see docs/contracts.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "protos" / "baseline"
BASELINE_IMAGE = BASELINE / "paynow.binpb"
BASELINE_OPENAPI = BASELINE / "openapi.json"
BUF_CONFIG = '{"version":"v2","breaking":{"use":["FILE"]}}'
_VALIDATE_FIELD_EXTENSION = 1159  # (buf.validate.field) on FieldOptions
# Bounds whose value may grow (upper) or shrink (lower) without refusing old requests.
_UPPER_BOUNDS = {"max_len", "max_bytes", "max_items", "max_pairs", "lte", "lt"}
_LOWER_BOUNDS = {"min_len", "min_bytes", "min_items", "min_pairs", "gte", "gt"}


def build_image(destination: Path) -> None:
    """A fresh descriptor set of protos/ (with imports), as `make gen` builds it."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--image", str(destination)],
        check=True,
        capture_output=True,
    )


def _load(path: Path) -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())


def buf_breaking(current: Path) -> list[str]:
    buf = Path(sys.executable).parent / "buf"
    result = subprocess.run(
        [
            str(buf),
            "breaking",
            str(current),
            "--against",
            str(BASELINE_IMAGE),
            "--path",
            "paynow",
            "--config",
            BUF_CONFIG,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = (result.stdout + result.stderr).strip().splitlines()
    return [f"buf breaking: {line}" for line in lines] if result.returncode else []


def _field_rules(field: descriptor_pb2.FieldDescriptorProto) -> dict[str, Any]:
    """The field's protovalidate rules as a flat {path: value} map (empty if none)."""
    # Imported here: the generated module needs generated/ on the path, which the
    # installed project provides, and only this check reads it.
    from buf.validate import validate_pb2  # noqa: PLC0415

    options = descriptor_pb2.FieldOptions.FromString(field.options.SerializeToString())
    if not options.HasExtension(validate_pb2.field):
        return {}
    rules = options.Extensions[validate_pb2.field]
    flat: dict[str, Any] = {}

    def walk(message: Any, prefix: str) -> None:
        for descriptor, value in message.ListFields():
            path = f"{prefix}{descriptor.name}"
            if descriptor.message_type is not None and not descriptor.is_repeated:
                walk(value, path + ".")
            else:
                flat[path] = list(value) if descriptor.is_repeated else value

    walk(rules, "")
    return flat


def _fields(images: descriptor_pb2.FileDescriptorSet) -> Iterator[tuple[str, Any]]:
    for file in images.file:
        if not file.package.startswith("paynow."):
            continue
        for message in file.message_type:
            for field in message.field:
                yield f"{file.package}.{message.name}.{field.name}", field


def _tightened(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    changes = []
    for path, value in after.items():
        old = before.get(path)
        if old == value:
            continue
        leaf = path.rsplit(".", 1)[-1]
        if old is not None and leaf in _UPPER_BOUNDS and value >= old:
            continue
        if old is not None and leaf in _LOWER_BOUNDS and value <= old:
            continue
        changes.append(
            f"{path}: {old!r} -> {value!r}" if old is not None else f"{path} = {value!r}"
        )
    return changes


def validation_breaking(current: Path) -> list[str]:
    """Rules added or tightened on fields that exist in the baseline."""
    before = dict(_fields(_load(BASELINE_IMAGE)))
    problems = []
    for name, field in _fields(_load(current)):
        if name not in before:
            continue  # a new field: its rules refuse nothing an old client sent
        changes = _tightened(_field_rules(before[name]), _field_rules(field))
        if changes:
            problems.append(f"validation: {name} now refuses more: {'; '.join(changes)}")
    return problems


def _bindings(images: descriptor_pb2.FileDescriptorSet) -> dict[str, set[str]]:
    """Per RPC, its HTTP bindings as `VERB path` (additional bindings included)."""
    from google.api import annotations_pb2, http_pb2  # noqa: PLC0415

    def verbs(rule: http_pb2.HttpRule) -> set[str]:
        pattern = rule.WhichOneof("pattern")
        found = set()
        if pattern == "custom":
            found.add(f"{rule.custom.kind} {rule.custom.path}")
        elif pattern:
            found.add(f"{pattern.upper()} {getattr(rule, pattern)}")
        for extra in rule.additional_bindings:
            found |= verbs(extra)
        return found

    bindings: dict[str, set[str]] = {}
    for file in images.file:
        if not file.package.startswith("paynow."):
            continue
        for service in file.service:
            for method in service.method:
                options = descriptor_pb2.MethodOptions.FromString(
                    method.options.SerializeToString()
                )
                if options.HasExtension(annotations_pb2.http):
                    name = f"{file.package}.{service.name}/{method.name}"
                    bindings[name] = verbs(options.Extensions[annotations_pb2.http])
    return bindings


def http_breaking(current: Path) -> list[str]:
    """HTTP bindings that clients of the baseline call and that no longer exist."""
    before, after = _bindings(_load(BASELINE_IMAGE)), _bindings(_load(current))
    problems = []
    for method, routes in sorted(before.items()):
        for route in sorted(routes - after.get(method, set())):
            problems.append(f"http: {method} is no longer served at {route}")
    return problems


def openapi_document(image: Path) -> dict[str, Any]:
    """The OpenAPI document the edge would serve for the protos in `image`."""
    # Imported here: only the REST check needs the edge.
    from services.edge.auth import INTERNAL  # noqa: PLC0415
    from services.edge.descriptors import load_descriptor_set  # noqa: PLC0415
    from services.edge.openapi import build_openapi  # noqa: PLC0415

    _, methods = load_descriptor_set(image, INTERNAL)
    return build_openapi(methods)


def _shape(schema: Any) -> Any:
    """A schema without its prose: descriptions and titles change no client's parsing."""
    if isinstance(schema, dict):
        return {k: _shape(v) for k, v in schema.items() if k not in {"description", "title"}}
    if isinstance(schema, list):
        return [_shape(item) for item in schema]
    return schema


def _surface(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per `VERB path`: its parameters (name → required) and response field names."""
    schemas = document.get("components", {}).get("schemas", {})
    surface: dict[str, dict[str, Any]] = {}
    for path, item in document.get("paths", {}).items():
        for verb, operation in item.items():
            if verb not in {"get", "put", "post", "patch", "delete"}:
                continue
            params = {p["name"]: bool(p.get("required")) for p in operation.get("parameters", [])}
            fields: dict[str, str] = {}
            content = operation.get("responses", {}).get("200", {}).get("content", {})
            for media in content.values():
                ref = media.get("schema", {}).get("$ref", "")
                schema = schemas.get(ref.rsplit("/", 1)[-1], {})
                fields |= {
                    name: json.dumps(_shape(prop), sort_keys=True)
                    for name, prop in schema.get("properties", {}).items()
                }
            surface[f"{verb.upper()} {path}"] = {"params": params, "fields": fields}
    return surface


def rest_breaking(current: Path) -> list[str]:
    """Routes, verbs, parameters and response fields that clients of the baseline rely on."""
    if not BASELINE_OPENAPI.exists():
        return []
    document = openapi_document(current)
    before = _surface(json.loads(BASELINE_OPENAPI.read_text()))
    after = _surface(document)
    problems = []
    for route, old in sorted(before.items()):
        new = after.get(route)
        if new is None:
            problems.append(f"rest: {route} is gone (a path or verb changed or was removed)")
            continue
        for name in sorted(set(old["params"]) - set(new["params"])):
            problems.append(f"rest: {route} lost parameter {name!r}")
        for name, required in sorted(new["params"].items()):
            if required and not old["params"].get(name, False):
                problems.append(f"rest: {route} now requires parameter {name!r}")
        for name, shape in sorted(old["fields"].items()):
            if name not in new["fields"]:
                problems.append(f"rest: {route} response lost field {name!r}")
            elif new["fields"][name] != shape:
                problems.append(f"rest: {route} response field {name!r} changed type")
    return problems


def breaking() -> int:
    if not BASELINE_IMAGE.exists():
        print(f"no baseline at {BASELINE_IMAGE.relative_to(ROOT)}: run `make contract-baseline`")
        return 1
    with tempfile.TemporaryDirectory(prefix="paynow-contracts-") as temp:
        current = Path(temp) / "current.binpb"
        build_image(current)
        problems = [
            *buf_breaking(current),
            *validation_breaking(current),
            *http_breaking(current),
            *rest_breaking(current),
        ]
    if problems:
        print("breaking changes against the contract baseline:")
        print("\n".join(f"  {p}" for p in problems))
        print("evolve the contract compatibly, or move the baseline on purpose (docs/contracts.md)")
        return 1
    print("no breaking changes against the contract baseline")
    return 0


def baseline() -> int:
    BASELINE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="paynow-contracts-") as temp:
        current = Path(temp) / "current.binpb"
        build_image(current)
        image = _load(current)
        for file in image.file:
            file.ClearField("source_code_info")  # comments are not contract; keep diffs small
        BASELINE_IMAGE.write_bytes(image.SerializeToString(deterministic=True))
        document = openapi_document(current)
    BASELINE_OPENAPI.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    print(f"baseline moved: commit {BASELINE.relative_to(ROOT)}/ with the reason in the message")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["breaking", "baseline"])
    return breaking() if parser.parse_args().command == "breaking" else baseline()


if __name__ == "__main__":
    raise SystemExit(main())
