"""Scaffold a new service in the house style: `make new-service NAME=payouts [RESOURCE=payout]`.

    python scripts/new_service.py payouts [--resource payout] [--prefix pyt] [--no-build]

Writes the protos (one resource with Get/List/Create/Update/Delete), services/<name>/ (app,
config, transport, domain, storage, migrations), unit and integration tests, contract examples
and REST goldens, a registry entry and a README row, from `scripts/templates/service/`; then
runs `make gen`, `make openapi` and the manifest generator (unless --no-build). The name is
checked first and nothing is written if it breaks a rule.
"""

from __future__ import annotations

import argparse
import json
import keyword
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "templates" / "service"
RESERVED = frozenset({"framework", "edge", "api", "baseline", "paynow", "services", "tests"})
NAME_RULE = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_NAME = 20
# Standard-library packages that sys.stdlib_module_names leaves out, and pytest's own.
SHADOWING = frozenset({"test", "idlelib", "conftest", "pytest"})


class NameError_(ValueError):
    """A service or resource name breaks a rule; the message names the rule."""


def check_name(name: str, root: Path = ROOT, what: str = "NAME") -> None:
    """Raise NameError_ naming the rule `name` breaks, or return if it may be used."""
    if not NAME_RULE.match(name) or name.endswith("_") or "__" in name:
        raise NameError_(
            f"{what}={name!r}: must be a lowercase identifier matching ^[a-z][a-z0-9_]*$ "
            "(no double or trailing underscore)"
        )
    if len(name) > MAX_NAME:
        raise NameError_(f"{what}={name!r}: must be at most {MAX_NAME} characters long")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise NameError_(f"{what}={name!r}: must not be a Python keyword")
    if name in sys.stdlib_module_names or name in sys.builtin_module_names or name in SHADOWING:
        raise NameError_(
            f"{what}={name!r}: must not be a Python standard-library module "
            "name (it would shadow it)"
        )
    if name in RESERVED:
        raise NameError_(f"{what}={name!r}: is reserved ({', '.join(sorted(RESERVED))})")
    if what != "NAME":
        return
    registry = tomllib.loads((root / "services" / "registry.toml").read_text(encoding="utf-8"))
    if name in registry.get("services", {}):
        raise NameError_(f"{what}={name!r}: a service with this name is already in the registry")
    if (root / "protos" / "paynow" / name).exists():
        raise NameError_(
            f"{what}={name!r}: the proto package directory protos/paynow/{name} exists"
        )
    if (root / "services" / name).exists():
        raise NameError_(f"{what}={name!r}: the directory services/{name} exists")


def _camel(snake: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


def _lower_camel(snake: str) -> str:
    camel = _camel(snake)
    return camel[:1].lower() + camel[1:]


def _taken_prefixes(root: Path) -> set[str]:
    found: set[str] = set()
    for proto in (root / "protos" / "paynow").rglob("*.proto"):
        found.update(re.findall(r'"\^([a-z]{2,4})_', proto.read_text(encoding="utf-8")))
    return found


def choose_prefix(resource: str, root: Path) -> str:
    """Three or four letters of the resource that no existing id pattern uses."""
    letters = re.sub(r"[^a-z]", "", resource) or "res"
    taken = _taken_prefixes(root)
    candidates = [
        letters[:3],
        letters[:4],
        letters[0] + letters[-2:],
        *(letters[:2] + c for c in "abcdefghijklmnopqrstuvwxyz"),
    ]
    return next(c for c in candidates if len(c) >= 2 and c not in taken)


def names(service: str, resource: str, prefix: str, port: int) -> dict[str, str]:
    """Every placeholder of the templates, from the service and resource names."""
    plural = resource + ("es" if resource.endswith(("s", "x", "z", "ch", "sh")) else "s")
    return {
        "service": service,
        "Service": _camel(service),
        "SERVICE": service.upper(),
        "resource": resource,
        "Resource": _camel(resource),
        "RESOURCE": resource.upper(),
        "resourceCamel": _lower_camel(resource),
        "resource_words": resource.replace("_", " "),
        "Resource_words": resource.replace("_", " ").capitalize(),
        "resources": plural,
        "Resources": _camel(plural),
        "resources_words": plural.replace("_", " "),
        "path": _lower_camel(plural),
        "prefix": prefix,
        "prefix_len": str(len(prefix) + 1),
        "port": str(port),
        "long_token": "t" * 513,
    }


def render(text: str, values: dict[str, str]) -> str:
    return re.sub(r"@@(\w+)@@", lambda m: values[m.group(1)], text)


def planned_files(values: dict[str, str]) -> dict[Path, str]:
    """Relative path → content of every file the templates and contracts produce."""
    files: dict[Path, str] = {}
    for template in sorted(TEMPLATES.rglob("*.tmpl")):
        relative = render(str(template.relative_to(TEMPLATES)), values).removesuffix(".tmpl")
        files[Path(relative)] = render(template.read_text(encoding="utf-8"), values)
    files.update(contract_files(values))
    return files


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def contract_files(v: dict[str, str]) -> dict[Path, str]:
    """gRPC examples and REST goldens for each standard method."""
    service, res = f"paynow.{v['service']}.v1.{v['Service']}Service", v["Resource"]
    owner = "acc_" + "0" * 21 + "owner"
    stranger = "acc_" + "0" * 18 + "stranger"
    as_owner = {"service": "edge", "user": owner}
    resource = {
        "id": {"$match": "id", "prefix": v["prefix"] + "_"},
        "displayName": "First",
        "ownerId": owner,
        "createTime": {"$match": "timestamp"},
        "updateTime": {"$match": "timestamp"},
        "etag": {"$match": "etag"},
    }
    create_step = {
        "rpc": f"{service}/Create{res}",
        "as": as_owner,
        "request": {
            v["resourceCamel"]: {"displayName": "First"},
            "idempotencyKey": "{{unique.key}}",
        },
        "capture": {"id": "id", "etag": "etag"},
    }
    grpc: dict[str, list[dict[str, Any]]] = {
        f"Get{res}": [
            {
                "name": "the owner reads it",
                "given": [create_step],
                "as": as_owner,
                "request": {"id": "{{id}}"},
                "response": {**resource, "id": "{{id}}"},
            },
            {
                "name": "another person's is not found",
                "given": [create_step],
                "as": {"service": "edge", "user": stranger},
                "request": {"id": "{{id}}"},
                "error": {
                    "code": "NOT_FOUND",
                    "reason": f"{v['RESOURCE']}_NOT_FOUND",
                    "domain": f"paynow.{v['service']}",
                },
            },
        ],
        f"List{v['Resources']}": [
            {
                "name": "the owner lists theirs",
                "given": [create_step],
                "as": as_owner,
                "request": {"pageSize": 100},
                "response": {v["path"]: {"$match": "eachLike", "like": {"ownerId": owner}}},
            },
        ],
        f"Create{res}": [
            {
                "name": "a person creates one",
                "as": as_owner,
                "request": create_step["request"],
                "response": resource,
            },
        ],
        f"Update{res}": [
            {
                "name": "the owner renames it with the etag they read",
                "given": [create_step],
                "as": as_owner,
                "request": {
                    v["resourceCamel"]: {
                        "id": "{{id}}",
                        "displayName": "Second",
                        "etag": "{{etag}}",
                    },
                    "updateMask": "displayName",
                },
                "response": {**resource, "id": "{{id}}", "displayName": "Second"},
            },
            {
                "name": "a stale etag is aborted",
                "given": [create_step],
                "as": as_owner,
                "request": {
                    v["resourceCamel"]: {"id": "{{id}}", "displayName": "Second", "etag": "stale"},
                    "updateMask": "displayName",
                },
                "error": {"code": "ABORTED", "reason": "ETAG_MISMATCH"},
            },
        ],
        f"Delete{res}": [
            {
                "name": "the owner deletes it",
                "given": [create_step],
                "as": as_owner,
                "request": {"id": "{{id}}"},
                "response": {},
            },
        ],
    }
    files = {
        Path("tests/contracts/examples", v["service"], f"{rpc}.json"): _dump(
            {"rpc": f"{service}/{rpc}", "exchanges": exchanges}
        )
        for rpc, exchanges in grpc.items()
    }
    files.update(rest_files(v, service, resource))
    return files


def rest_files(v: dict[str, str], service: str, resource: dict[str, Any]) -> dict[Path, str]:
    """REST goldens: a person registers and logs in through the edge, then calls each route."""
    sign_in = [
        {
            "method": "POST",
            "path": "/v1/auth:register",
            "body": {
                "email": "{{unique.ownerEmail}}",
                "password": "correct horse battery staple",
                "displayName": "Ada Lovelace",
            },
            "capture": {"ownerId": "accountId"},
        },
        {
            "method": "POST",
            "path": "/v1/auth:login",
            "body": {"email": "{{unique.ownerEmail}}", "password": "correct horse battery staple"},
            "capture": {"ownerToken": "tokens.accessToken"},
        },
    ]
    collection = f"/v1/{v['path']}"
    create = {
        "method": "POST",
        "path": collection,
        "auth": "user:ownerToken",
        "headers": {"Idempotency-Key": "{{unique.key}}"},
        "body": {"displayName": "First"},
        "capture": {"id": "id", "etag": "etag"},
    }
    owned = {**resource, "ownerId": "{{ownerId}}"}
    headers = {"x-request-id": {"$match": "string"}}
    res = v["Resource"]
    rest: dict[str, dict[str, Any]] = {
        f"Get{res}": {
            "name": "the owner reads it",
            "given": [*sign_in, create],
            "method": "GET",
            "path": collection + "/{{id}}",
            "response": {**owned, "id": "{{id}}"},
        },
        f"List{v['Resources']}": {
            "name": "the owner lists theirs",
            "given": [*sign_in, create],
            "method": "GET",
            "path": collection,
            "query": {"pageSize": 10},
            "response": {v["path"]: [{**owned, "id": "{{id}}"}]},
        },
        f"Create{res}": {
            "name": "a person creates one",
            "given": sign_in,
            "method": "POST",
            "path": collection,
            "headers": create["headers"],
            "body": {"displayName": "First"},
            "response": owned,
        },
        f"Update{res}": {
            "name": "the owner renames it with the etag they read",
            "given": [*sign_in, create],
            "method": "PATCH",
            "path": collection + "/{{id}}",
            "query": {"updateMask": "displayName"},
            "body": {"displayName": "Second", "etag": "{{etag}}"},
            "response": {**owned, "id": "{{id}}", "displayName": "Second"},
        },
        f"Delete{res}": {
            "name": "the owner deletes it",
            "given": [*sign_in, create],
            "method": "DELETE",
            "path": collection + "/{{id}}",
            "response": {},
        },
    }
    return {
        Path("tests/contracts/rest", v["service"], f"{rpc}.json"): _dump(
            {
                "rpc": f"{service}/{rpc}",
                "exchanges": [
                    {
                        **exchange,
                        "auth": "user:ownerToken",
                        "status": 200,
                        "responseHeaders": headers,
                    }
                ],
            }
        )
        for rpc, exchange in rest.items()
    }


def next_port(root: Path) -> int:
    registry = tomllib.loads((root / "services" / "registry.toml").read_text(encoding="utf-8"))
    ports = [entry["port"] for entry in registry["services"].values() if "http_health" not in entry]
    return int(max(ports)) + 1


def add_to_registry(root: Path, v: dict[str, str]) -> None:
    """Append the service's entry before the edge's and let the edge call it."""
    path = root / "services" / "registry.toml"
    text = path.read_text(encoding="utf-8")
    entry = (
        f'[services.{v["service"]}]\nport = {v["port"]}\nmodule = "services.{v["service"]}"\n'
        f'grpc_services = ["paynow.{v["service"]}.v1.{v["Service"]}Service"]\n'
        'calls = []\ncallers = ["edge"]\n\n'
    )
    edge = re.search(r"^(# [^\n]*\n)*\[services\.edge\]", text, re.MULTILINE)
    if edge is None:
        text = text.rstrip("\n") + "\n\n" + entry.rstrip("\n") + "\n"
    else:
        text = text[: edge.start()] + entry + text[edge.start() :]
        text = re.sub(
            r"(\[services\.edge\][^\[]*?\ncalls = \[)([^\]]*)\]",
            lambda m: (
                f'{m.group(1)}{m.group(2)}, "{v["service"]}"]'
                if m.group(2).strip()
                else f'{m.group(1)}"{v["service"]}"]'
            ),
            text,
            count=1,
        )
    path.write_text(text, encoding="utf-8")


def add_to_readme(root: Path, v: dict[str, str]) -> None:
    """A row in the README's table of services, before the edge's."""
    path = root / "README.md"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    row = (
        f"| `{v['service']}` | each person's {v['resources_words']} (scaffolded: "
        f"`protos/paynow/{v['service']}/v1/`) | [docs/guides/add-a-service.md]"
        "(docs/guides/add-a-service.md) |\n"
    )
    at = next((i for i, line in enumerate(lines) if line.startswith("| `edge` |")), None)
    if at is None:
        lines.append("\n" + row)
    else:
        lines.insert(at, row)
    path.write_text("".join(lines), encoding="utf-8")


def build(root: Path, new_paths: list[Path]) -> None:
    """Format the new code, regenerate code, OpenAPI and manifests."""
    bin_dir = root / ".venv" / "bin"
    python_files = [str(p) for p in new_paths if p.suffix == ".py"]
    steps = [
        [str(bin_dir / "ruff"), "check", "--fix-only", "--quiet", *python_files],
        [str(bin_dir / "ruff"), "format", "--quiet", *python_files],
        [str(bin_dir / "buf"), "format", "protos", "--write"],
        ["make", "gen"],
        ["make", "openapi"],
        [str(bin_dir / "python"), "scripts/deploy_manifests.py"],
    ]
    for step in steps:
        print("+", " ".join(step[:3]), flush=True)
        subprocess.run(step, cwd=root, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the service's name, e.g. payouts")
    parser.add_argument("--resource", default="", help="the resource's snake_case name")
    parser.add_argument("--prefix", default="", help="the ids' prefix, 2 to 4 letters")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--no-build", action="store_true", help="skip gen, openapi, manifests")
    args = parser.parse_args(argv)
    root: Path = args.root
    resource = args.resource or (args.name[:-1] if args.name.endswith("s") else args.name)
    try:
        check_name(args.name, root)
        check_name(resource, root, what="RESOURCE")
        if args.prefix and not re.fullmatch(r"[a-z]{2,4}", args.prefix):
            raise NameError_(f"PREFIX={args.prefix!r}: must be 2 to 4 lowercase letters")
    except NameError_ as error:
        print(f"new-service: {error}", file=sys.stderr)
        return 2
    prefix = args.prefix or choose_prefix(resource, root)
    values = names(args.name, resource, prefix, next_port(root))
    files = planned_files(values)
    clashes = [str(p) for p in files if (root / p).exists()]
    if clashes:
        print(f"new-service: these files exist already: {', '.join(clashes)}", file=sys.stderr)
        return 2
    for relative, content in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(content, encoding="utf-8")
    add_to_registry(root, values)
    add_to_readme(root, values)
    if not args.no_build:
        build(root, [root / p for p in files])
    print(
        f"new-service: created {args.name} ({len(files)} files); see docs/guides/add-a-service.md"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
