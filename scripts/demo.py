"""The whole PayNow journey over HTTP against a running stack (`make run`), printed step by
step: every request and every response, with tokens and API keys shortened.

    python scripts/demo.py                              # the edge at http://127.0.0.1:8080
    python scripts/demo.py --edge http://127.0.0.1:9000

Two people sign up and log in; one tops up a wallet, the other opens a shop with an API key;
the shop asks for a payment, the shopper approves it, the shop refunds it in two parts.
Exits 1, saying why, if the edge is unreachable or a step does not answer 200.
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import sys
import urllib.parse
from typing import Any

# The demo's own throwaway password: fine to show, unlike the tokens it buys.
PASSWORD = "correct horse battery staple"  # noqa: S105
_SECRETS = {"accessToken", "refreshToken", "secret"}  # JSON fields shown shortened
_SHOWN = 10  # characters of a secret kept, enough to tell two apart


class DemoError(Exception):
    """The journey cannot go on; the message says why."""


def shorten(secret: str) -> str:
    """The first characters of a token or key and an ellipsis (`eyJhbGciOi…`)."""
    return secret[:_SHOWN] + "…"


def redact(value: Any) -> Any:
    """`value` (parsed JSON) with every token and API key secret shortened."""
    if isinstance(value, dict):
        return {
            k: shorten(v) if k in _SECRETS and isinstance(v, str) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


class Edge:
    """A plain HTTP client of the edge that prints each exchange."""

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "http" or parsed.hostname is None:
            raise DemoError(f"--edge must be an http:// URL, not {url!r}")
        self.url = url
        self._host = parsed.hostname
        self._port = parsed.port or 80

    def call(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> Any:
        """Send `body` as JSON (with a fresh Idempotency-Key on POST); return the JSON reply."""
        headers = {"content-type": "application/json"}
        shown = {}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
            shown["Authorization"] = f"Bearer {shorten(token)}"
        if method == "POST":
            headers["idempotency-key"] = shown["Idempotency-Key"] = secrets.token_hex(8)
        print(f"→ {method} {path}")
        for name, value in shown.items():
            print(f"  {name}: {value}")
        if body is not None:
            print(_indent(json.dumps(body, indent=2)))
        status, reply = self._send(method, path, body, headers)
        print(f"← {status}")
        print(_indent(json.dumps(redact(reply), indent=2, ensure_ascii=False)))
        print()
        if status != 200:
            raise DemoError(f"{method} {path} answered {status}")
        return reply

    def _send(self, method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=30)
        try:
            raw = None if body is None else json.dumps(body).encode()
            connection.request(method, path, body=raw, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except OSError as error:
            raise DemoError(
                f"the edge at {self.url} is not reachable ({error}); start it with `make run`"
            ) from None
        finally:
            connection.close()
        return response.status, json.loads(data) if data else None


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _step(title: str) -> None:
    print(f"## {title}\n")


def _sign_up(edge: Edge, name: str) -> tuple[str, str]:
    email = f"{name.lower()}-{secrets.token_hex(3)}@example.com"
    _step(f"{name} registers and logs in")
    body = {"email": email, "password": PASSWORD, "displayName": name}
    account_id = edge.call("POST", "/v1/auth:register", body)["accountId"]
    login = edge.call("POST", "/v1/auth:login", {"email": email, "password": PASSWORD})
    return str(account_id), str(login["tokens"]["accessToken"])


def journey(edge: Edge) -> None:
    """Every step of the journey, printed; raises DemoError at the first failing one."""
    shopper, shopper_token = _sign_up(edge, "Ada")
    _, owner_token = _sign_up(edge, "Grace")

    _step("Ada deposits 100.00 EUR")
    deposit = {"amountMinor": "10000", "currencyCode": "EUR"}
    edge.call("POST", f"/v1/accounts/{shopper}:deposit", deposit, token=shopper_token)

    _step("Grace opens a shop and creates an API key for its server")
    shop = {"displayName": "Tea Shop", "currencyCode": "EUR"}
    merchant = edge.call("POST", "/v1/merchants", shop, token=owner_token)
    key_path = f"/v1/merchants/{merchant['id']}/apiKeys"
    api_key = edge.call("POST", key_path, {"displayName": "server"}, token=owner_token)["secret"]

    _step("The shop asks Ada for 25.00 EUR with its API key")
    ask = {"amountMinor": "2500", "currencyCode": "EUR", "description": "tea"}
    payment = edge.call("POST", "/v1/payments", ask, token=api_key)

    _step("Ada approves the payment")
    edge.call("POST", f"/v1/payments/{payment['id']}:approve", {}, token=shopper_token)

    _step("The shop refunds 10.00 EUR, then the remaining 15.00 EUR")
    for amount in ("1000", "1500"):
        refund = {"amountMinor": amount, "reason": "returned"}
        edge.call("POST", f"/v1/payments/{payment['id']}:refund", refund, token=api_key)

    _step("The balances: Ada has her 100.00 EUR back, the shop's account is empty")
    edge.call("GET", f"/v1/accounts/{shopper}", token=shopper_token)
    settlement = merchant["settlementAccountId"]
    edge.call("GET", f"/v1/accounts/{settlement}", token=owner_token)
    print("The whole journey succeeded.")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edge", default="http://127.0.0.1:8080", help="the edge's URL")
    args = parser.parse_args(argv)
    try:
        journey(Edge(args.edge.rstrip("/")))
    except DemoError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
