"""Write the edge's OpenAPI 3.1 document for PayNow's protos (what `/openapi.json` serves).

    python scripts/openapi.py            # write docs/openapi.json
    python scripts/openapi.py --check    # fail if docs/openapi.json differs from a fresh build

It reads the generated descriptor set, so run `make gen` first after a proto change. Methods
without an access option count as INTERNAL, as PayNow's edge is started, and never appear.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.edge.auth import INTERNAL
from services.edge.descriptors import load_descriptor_set
from services.edge.openapi import build_openapi, openapi_json

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTOR_SET = ROOT / "generated" / "paynow" / "descriptor_set.binpb"
OUT = ROOT / "docs" / "openapi.json"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--descriptor-set", type=Path, default=DESCRIPTOR_SET)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    _, methods = load_descriptor_set(args.descriptor_set, INTERNAL)
    document = openapi_json(build_openapi(methods))
    if args.check:
        if not args.out.exists() or args.out.read_bytes() != document:
            print(f"{args.out} is stale: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    args.out.write_bytes(document)
    print(f"wrote {args.out} ({len(document)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
