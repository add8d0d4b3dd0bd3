"""Manage auth's signing keys: `generate DIR` adds a key (rotation step 1), `list DIR` shows them.

    python scripts/signing_keys.py generate data/signing-keys
    python scripts/signing_keys.py list data/signing-keys

The newest key (greatest file name) signs from the service's next key reload (within
PAYNOW_AUTH_SIGNING_KEY_RELOAD_S); every key in the directory is published. See docs/auth.md
for the whole rotation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.auth.keys import generate_key, load_keys


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("generate", "write a new Ed25519 key; it becomes the signing key"),
        ("list", "list the keys, oldest first, marking the one that signs"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    if args.command == "generate":
        key = generate_key(args.directory)
        print(f"generated {key.name} kid={key.kid}")
        return 0
    keys = load_keys(args.directory)
    if not keys:
        print(f"no keys in {args.directory}", file=sys.stderr)
        return 1
    for key in keys:
        marker = "signs" if key is keys[-1] else "published"
        print(f"{key.name}  kid={key.kid}  {marker}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
