"""Server-assigned opaque ids: a type prefix and 26 random characters from [0-9a-z].

26 base-36 characters carry about 134 bits, so ids can be created anywhere without
coordination and cannot be guessed. The prefix tells a reader (and a log search) what an id
names; the protos check the shape with `^<prefix>_[0-9a-z]{26}$`.
"""

from __future__ import annotations

import re
import secrets

__all__ = ["ID_ALPHABET", "ID_LENGTH", "is_id", "new_id"]

ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 26
_PREFIX = re.compile(r"^[a-z]{2,4}$")


def new_id(prefix: str) -> str:
    """Return a fresh id such as `acc_3k…`; raises ValueError for a malformed prefix."""
    if not _PREFIX.match(prefix):
        raise ValueError(f"id prefix must be 2 to 4 lowercase letters, got {prefix!r}")
    return f"{prefix}_" + "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def is_id(value: str, prefix: str) -> bool:
    """True if `value` has the shape of an id with this prefix."""
    head, _, tail = value.partition("_")
    return head == prefix and len(tail) == ID_LENGTH and all(c in ID_ALPHABET for c in tail)
