"""Soak the whole stack through the edge: minutes of mixed traffic, memory growth per process.

    python scripts/soak.py [--minutes 3 | --seconds 20] [--workers 12] [--write docs/benchmarks.md]

Starts every registry service as `make run` does (free ports, a temporary data dir, rate
limits raised far above the load so the soak measures the platform, not the limiter), then
runs worker threads against the edge over plain HTTP/1.1 keep-alive connections: sign-ups
and logins (few: argon2), deposits, reads and listings, shops and API keys, payments made
with a key and approved or declined by a person, refunds, WatchPayment streams, and a share
of bad requests whose 4xx is the right answer. Each process's RSS (VmRSS of its process
group) is sampled after the warm-up (the first 15 % of the run), every few seconds after it,
and at the end. At the end every balance the soak touched is compared with what the soak
moved into and out of it.

Exits 1 on any 5xx, transport error or timeout, unexpected status or balance mismatch;
2 if the stack does not start.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import datetime
import http.client
import json
import os
import random
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

# The repository root is on the path through the project's editable install.
from scripts.bench_report import write_section
from services.edge.rate_limits import write_unreachable_budgets
from services.framework._registry import load_registry
from services.framework._stack import Stack, StackError, free_ports, start_stack

PASSWORD = "correct horse battery staple"  # noqa: S105 - the soak's throwaway people
WARM_UP_SHARE = 0.15
TOKEN_REFRESH_AFTER_S = 150.0  # access tokens live 300 s (auth's default)
PENDING_MAX_AGE_S = 600.0  # payments wait 900 s for approval; older ones are left alone
HASHING_AT_ONCE = 2  # sign-ups and logins in flight at once (argon2 is the costly part)
OUTCOMES = ("2xx", "expected 4xx", "unexpected 4xx", "unexpected 2xx/3xx", "5xx", "transport")
FAILING = OUTCOMES[2:]
SECTION = "soak"
HEADING = "## Soak"
INTRO = """\
`scripts/soak.py` (`make soak`): the whole stack as `make run` starts it, on SQLite, driven
through the edge by worker threads over HTTP/1.1 keep-alive for a few minutes: sign-ups and
logins (a small share: argon2), deposits, reads and listings, shops and API keys, payments
created with a key and approved or declined by a person, refunds, WatchPayment streams
(some cut off mid-stream), and bad requests (unknown routes, wrong methods, malformed and
over-deep JSON, missing or invalid credentials, someone else's account) whose 4xx is the
right answer. Rate limits are raised far above the load, so the limiter is not measured.
RSS is VmRSS from `/proc` for each service's process group."""

_MiB = 1024 * 1024


# --- counting ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Tally:
    """Requests by outcome and by operation, shared by the worker threads."""

    outcomes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    operations: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    latencies: list[float] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def add(self, operation: str, outcome: str, seconds: float, problem: str | None) -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            self.operations[operation] += 1
            self.latencies.append(seconds)
            if problem is not None and len(self.problems) < 20:
                self.problems.append(problem)

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    @property
    def failures(self) -> int:
        return sum(self.outcomes[o] for o in FAILING)


def classify(status: int, expect: Iterable[int]) -> str:
    if status in expect:
        return "2xx" if status < 300 else "expected 4xx"
    if status >= 500:
        return "5xx"
    if status >= 400:
        return "unexpected 4xx"
    return "unexpected 2xx/3xx"


# --- the soak's people, shops and payments ------------------------------------------------------


@dataclasses.dataclass(eq=False)
class Person:
    account_id: str
    email: str
    token: str
    refresh_token: str
    token_time: float
    balance: int = 0  # what the soak moved in and out; checked against the ledger at the end
    uncertain: bool = False  # a money request without a clear answer: not checked


@dataclasses.dataclass(eq=False)
class Shop:
    owner: Person
    merchant_id: str
    settlement_id: str
    api_key: str = ""
    balance: int = 0
    uncertain: bool = False


@dataclasses.dataclass(eq=False)
class Payment:
    id: str
    shop: Shop
    amount: int
    created: float
    payer: Person | None = None
    refunded: int = 0
    terminal: bool = False


@dataclasses.dataclass
class Reply:
    status: int
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Transport(Exception):
    """No HTTP answer: the connection failed, closed or timed out."""


class Worker:
    """One thread's share of the traffic, with its own people, shops and connection."""

    def __init__(
        self,
        index: int,
        port: int,
        tally: Tally,
        stop: threading.Event,
        hashing: threading.Semaphore,
    ) -> None:
        self.index = index
        self.port = port
        self.tally = tally
        self.stop = stop
        self.hashing = hashing
        self.random = random.Random(index)  # noqa: S311 - a traffic mix, not a secret
        self.connection: http.client.HTTPConnection | None = None
        self.people: list[Person] = []
        self.shops: list[Shop] = []
        self.pending: list[Payment] = []
        self.paid: list[Payment] = []  # succeeded, possibly partly refunded
        self.finished: list[Payment] = []  # declined or fully refunded (kept bounded)
        self.deposited = self.paid_total = self.refunded_total = 0

    # --- HTTP ---------------------------------------------------------------------------------

    def _exchange(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> Reply:
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
            return Reply(response.status, response.read())
        except (OSError, http.client.HTTPException) as error:
            self.connection.close()
            self.connection = None
            raise Transport(f"{type(error).__name__}: {error}") from None

    def call(
        self,
        operation: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        raw: bytes | None = None,
        expect: Iterable[int] = (200,),
        headers: dict[str, str] | None = None,
    ) -> Reply | None:
        """One request, counted by outcome; the reply, or None if there was none."""
        sent = dict(headers or {})
        if token is not None:
            sent["authorization"] = f"Bearer {token}"
        if body is not None:
            raw = json.dumps(body).encode()
        if raw is not None:
            sent["content-type"] = "application/json"
        if method == "POST":
            sent.setdefault("idempotency-key", secrets.token_hex(8))
        expected = set(expect)
        started = time.perf_counter()
        try:
            reply = self._exchange(method, path, raw, sent)
        except Transport as error:
            seconds = time.perf_counter() - started
            self.tally.add(operation, "transport", seconds, f"{operation} {method} {path}: {error}")
            return None
        seconds = time.perf_counter() - started
        outcome = classify(reply.status, expected)
        problem = None
        if outcome in FAILING:
            text = reply.body[:300].decode("utf-8", "replace")
            problem = f"{operation} {method} {path}: {reply.status} (expected {expected}) {text}"
        self.tally.add(operation, outcome, seconds, problem)
        return reply

    # --- people and shops ---------------------------------------------------------------------

    def sign_up(self) -> Person | None:
        email = f"soak{self.index}-{secrets.token_hex(5)}@example.com"
        body = {"email": email, "password": PASSWORD, "displayName": f"Soak {self.index}"}
        with self.hashing:
            registered = self.call("sign-up", "POST", "/v1/auth:register", body)
            if registered is None or registered.status != 200:
                return None
            login = self.call("login", "POST", "/v1/auth:login", _credentials(email))
        if login is None or login.status != 200:
            return None
        tokens = login.json["tokens"]
        person = Person(
            registered.json["accountId"],
            email,
            tokens["accessToken"],
            tokens["refreshToken"],
            time.monotonic(),
        )
        self.people.append(person)
        return person

    def token(self, person: Person) -> str:
        """The person's access token, refreshed (rotating the refresh token) when old."""
        if time.monotonic() - person.token_time > TOKEN_REFRESH_AFTER_S:
            self.refresh(person)
        return person.token

    def refresh(self, person: Person) -> None:
        body = {"refreshToken": person.refresh_token}
        reply = self.call("refresh", "POST", "/v1/auth:refresh", body)
        if reply is not None and reply.status == 200:
            tokens = reply.json["tokens"]
            person.token, person.refresh_token = tokens["accessToken"], tokens["refreshToken"]
            person.token_time = time.monotonic()

    def log_in_again(self) -> None:
        person = self.random.choice(self.people)
        with self.hashing:
            reply = self.call("login", "POST", "/v1/auth:login", _credentials(person.email))
        if reply is not None and reply.status == 200:
            tokens = reply.json["tokens"]
            person.token, person.refresh_token = tokens["accessToken"], tokens["refreshToken"]
            person.token_time = time.monotonic()

    def open_shop(self) -> None:
        owner = self.random.choice(self.people)
        body = {"displayName": f"Soak shop {self.index}", "currencyCode": "EUR"}
        reply = self.call("create merchant", "POST", "/v1/merchants", body, token=self.token(owner))
        if reply is not None and reply.status == 200:
            merchant = reply.json
            shop = Shop(owner, merchant["id"], merchant["settlementAccountId"])
            if self.create_api_key(shop):
                self.shops.append(shop)

    def create_api_key(self, shop: Shop | None = None) -> bool:
        shop = shop or self.random.choice(self.shops)
        path = f"/v1/merchants/{shop.merchant_id}/apiKeys"
        token = self.token(shop.owner)
        reply = self.call("create API key", "POST", path, {"displayName": "soak"}, token=token)
        if reply is None or reply.status != 200:
            return False
        shop.api_key = reply.json["secret"]  # the newest key; older ones stay valid
        return True

    def new_api_key(self) -> None:
        self.create_api_key()

    # --- money --------------------------------------------------------------------------------

    def deposit(self) -> None:
        person = self.random.choice(self.people)
        amount = self.random.randint(1_000, 20_000)
        body = {"amountMinor": str(amount), "currencyCode": "EUR"}
        path = f"/v1/accounts/{person.account_id}:deposit"
        reply = self.call("deposit", "POST", path, body, token=self.token(person))
        if reply is None or reply.status >= 500:
            person.uncertain = True
        elif reply.status == 200:
            person.balance += amount
            self.deposited += amount

    def create_payment(self) -> None:
        if len(self.pending) >= 50:
            self.approve()
            return
        shop = self.random.choice(self.shops)
        amount = self.random.randint(100, 3_000)
        body = {"amountMinor": str(amount), "currencyCode": "EUR", "description": "soak"}
        reply = self.call("create payment", "POST", "/v1/payments", body, token=shop.api_key)
        if reply is not None and reply.status == 200:
            self.pending.append(Payment(reply.json["id"], shop, amount, time.monotonic()))

    def _take_pending(self) -> Payment | None:
        now = time.monotonic()
        self.pending = [p for p in self.pending if now - p.created < PENDING_MAX_AGE_S]
        if not self.pending:
            return None
        return self.pending.pop(self.random.randrange(len(self.pending)))

    def approve(self) -> None:
        payment = self._take_pending()
        if payment is None:
            self.create_payment()
            return
        payer = self.random.choice(self.people)
        covered = payer.balance >= payment.amount
        expect = (200,) if covered and not payer.uncertain else (200, 400)
        path = f"/v1/payments/{payment.id}:approve"
        reply = self.call("approve", "POST", path, {}, token=self.token(payer), expect=expect)
        if reply is None or reply.status >= 500:
            payer.uncertain = payment.shop.uncertain = True
        elif reply.status == 200:
            payer.balance -= payment.amount
            payment.shop.balance += payment.amount
            payment.payer = payer
            self.paid_total += payment.amount
            self.paid.append(payment)
        else:  # declined: insufficient funds
            self._finish(payment)

    def decline(self) -> None:
        payment = self._take_pending()
        if payment is None:
            return
        payer = self.random.choice(self.people)
        path = f"/v1/payments/{payment.id}:decline"
        self.call("decline", "POST", path, {}, token=self.token(payer))
        self._finish(payment)

    def refund(self) -> None:
        if not self.paid:
            self.approve()
            return
        payment = self.random.choice(self.paid)
        left = payment.amount - payment.refunded
        amount = left if self.random.random() < 0.5 else self.random.randint(1, left)
        body = {"amountMinor": str(amount), "reason": "soak"}
        path = f"/v1/payments/{payment.id}:refund"
        reply = self.call("refund", "POST", path, body, token=payment.shop.api_key)
        payer = payment.payer
        assert payer is not None
        if reply is None or reply.status >= 500:
            payer.uncertain = payment.shop.uncertain = True
        elif reply.status == 200:
            payer.balance += amount
            payment.shop.balance -= amount
            payment.refunded += amount
            self.refunded_total += amount
            if payment.refunded == payment.amount:
                self.paid.remove(payment)
                self._finish(payment)

    def _finish(self, payment: Payment) -> None:
        payment.terminal = True
        self.finished.append(payment)
        del self.finished[:-100]

    # --- reads --------------------------------------------------------------------------------

    def get_account(self) -> None:
        person = self.random.choice(self.people)
        path = f"/v1/accounts/{person.account_id}"
        self.call("get account", "GET", path, token=self.token(person))

    def get_settlement(self) -> None:
        shop = self.random.choice(self.shops)
        path = f"/v1/accounts/{shop.settlement_id}"
        self.call("get account", "GET", path, token=self.token(shop.owner))

    def list_accounts(self) -> None:
        person = self.random.choice(self.people)
        self.call("list accounts", "GET", "/v1/accounts", token=self.token(person))

    def list_transactions(self) -> None:
        person = self.random.choice(self.people)
        size = self.random.choice((10, 50, 100))
        path = f"/v1/accounts/{person.account_id}/transactions?pageSize={size}"
        reply = self.call("list transactions", "GET", path, token=self.token(person))
        if reply is not None and reply.status == 200 and reply.json.get("nextPageToken"):
            page = f"{path}&pageToken={reply.json['nextPageToken']}"
            self.call("list transactions", "GET", page, token=self.token(person))

    def my_payments(self) -> None:
        person = self.random.choice(self.people)
        self.call("list my payments", "GET", "/v1/me/payments", token=self.token(person))

    def list_merchants(self) -> None:
        shop = self.random.choice(self.shops)
        owner_token = self.token(shop.owner)
        self.call("list merchants", "GET", "/v1/merchants", token=owner_token)
        path = f"/v1/merchants/{shop.merchant_id}/apiKeys"
        self.call("list API keys", "GET", path, token=owner_token)

    def get_payment(self) -> None:
        choices = self.paid + self.finished + self.pending
        if not choices:
            return
        payment = self.random.choice(choices)
        path = f"/v1/payments/{payment.id}"
        self.call("get payment", "GET", path, token=payment.shop.api_key)

    def list_payments(self) -> None:
        shop = self.random.choice(self.shops)
        self.call("list payments", "GET", "/v1/payments?pageSize=20", token=shop.api_key)

    def watch(self) -> None:
        """A terminal payment's stream (one line, then the end), or a pending one's first
        line and then a hang-up, which must cancel the backend's stream."""
        done = self.finished + self.paid
        cut = bool(self.pending) and (not done or self.random.random() < 0.3)
        payment = self.random.choice(self.pending if cut else done) if (cut or done) else None
        if payment is None:
            return
        path = f"/v1/payments/{payment.id}:watch"
        operation = "watch (hang up)" if cut else "watch"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        started = time.perf_counter()
        status, problem, lines = 0, None, 0
        try:
            headers = {"authorization": f"Bearer {payment.shop.api_key}"}
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            status = response.status
            while line := response.readline():
                json.loads(line)
                lines += 1
                if cut:
                    break
        except (OSError, http.client.HTTPException, ValueError) as error:
            problem = f"{operation} {path}: {type(error).__name__}: {error}"
        finally:
            connection.close()
        seconds = time.perf_counter() - started
        if problem is not None:
            self.tally.add(operation, "transport", seconds, problem)
            return
        outcome = classify(status, {200})
        if outcome == "2xx" and lines == 0:
            outcome, problem = "transport", f"{operation} {path}: a stream without a line"
        elif outcome != "2xx":
            problem = f"{operation} {path}: {status}"
        self.tally.add(operation, outcome, seconds, problem)

    # --- bad requests -------------------------------------------------------------------------

    def bad_request(self) -> None:
        person = self.random.choice(self.people)
        token = self.token(person)
        own = f"/v1/accounts/{person.account_id}"
        deep = b'{"amountMinor": ' + b'{"a": ' * 40 + b"1" + b"}" * 41
        kind = self.random.randrange(12)
        op = "bad request"
        if kind == 0:
            self.call(op, "GET", f"/v1/nothing/{secrets.token_hex(4)}", expect=(404,))
        elif kind == 1:
            self.call(op, "PUT", own, {}, token=token, expect=(405,))
        elif kind == 2:
            raw = b'{"amountMinor": "10", "currencyCode": '
            self.call(op, "POST", f"{own}:deposit", raw=raw, token=token, expect=(400,))
        elif kind == 3:
            body = {"amountMinor": "10", "currencyCode": "EUR", "tip": 1}
            self.call(op, "POST", f"{own}:deposit", body, token=token, expect=(400,))
        elif kind == 4:
            self.call(op, "GET", own, expect=(401,))
        elif kind == 5:
            self.call(op, "GET", own, token="not-a-jwt." + secrets.token_hex(8), expect=(401,))
        elif kind == 6:
            fake = "sk_" + secrets.token_urlsafe(32)
            body = {"amountMinor": "100", "currencyCode": "EUR", "description": "x"}
            self.call(op, "POST", "/v1/payments", body, token=fake, expect=(401,))
        elif kind == 7:
            shop = self.random.choice(self.shops)
            self.call(op, "POST", "/v1/payments", raw=deep, token=shop.api_key, expect=(400,))
        elif kind == 8:
            body = {"email": "not-an-email", "password": PASSWORD}
            self.call(op, "POST", "/v1/auth:register", body, expect=(400,))
        elif kind == 9:
            other = self.random.choice(self.people)
            expect = (200,) if other is person else (404,)
            self.call(op, "GET", f"/v1/accounts/{other.account_id}", token=token, expect=expect)
        elif kind == 10:
            self.call(op, "GET", "/v1/accounts?pageSize=-1", token=token, expect=(400,))
        else:
            path = f"/v1/payments/pay_{secrets.token_hex(8)}:approve"
            self.call(op, "POST", path, {}, token=token, expect=(400, 404))

    # --- the loop -----------------------------------------------------------------------------

    def set_up(self) -> bool:
        """Two people (one with money) and a shop with a key, or False if that failed."""
        for _ in range(2):
            if self.sign_up() is None:
                return False
        self.deposit()
        self.open_shop()
        return bool(self.shops)

    def mix(self) -> list[tuple[Callable[[], None], int]]:
        """Each operation and its weight (shares of the requests, roughly)."""
        return [
            (self._sign_up_more, 2),
            (self.log_in_again, 1),
            (lambda: self.refresh(self.random.choice(self.people)), 1),
            (self.deposit, 10),
            (self.get_account, 8),
            (self.get_settlement, 2),
            (self.list_accounts, 4),
            (self.list_transactions, 6),
            (self.my_payments, 4),
            (self.open_shop, 1),
            (self.new_api_key, 1),
            (self.list_merchants, 2),
            (self.create_payment, 12),
            (self.approve, 10),
            (self.decline, 1),
            (self.refund, 6),
            (self.get_payment, 4),
            (self.list_payments, 3),
            (self.watch, 2),
            (self.bad_request, 14),
        ]

    def _sign_up_more(self) -> None:
        if len(self.people) < 40:
            self.sign_up()
        else:
            self.log_in_again()

    def run(self, until: float) -> None:
        if not self.set_up():
            return
        operations, weights = zip(*self.mix(), strict=True)
        while not self.stop.is_set() and time.monotonic() < until:
            self.random.choices(operations, weights)[0]()
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def check_balances(self) -> tuple[int, list[str]]:
        """(accounts checked, mismatches) of every balance this worker moved money through."""
        checked, wrong = 0, []
        accounts = [(p.account_id, p, p.balance, p.uncertain) for p in self.people]
        accounts += [(s.settlement_id, s.owner, s.balance, s.uncertain) for s in self.shops]
        for account_id, holder, expected, uncertain in accounts:
            if uncertain:
                continue
            path = f"/v1/accounts/{account_id}"
            reply = self.call("check balance", "GET", path, token=self.token(holder))
            if reply is None or reply.status != 200:
                wrong.append(f"{account_id}: no balance ({reply and reply.status})")
                continue
            checked += 1
            actual = int(reply.json["balanceMinor"])
            if actual != expected:
                wrong.append(f"{account_id}: ledger says {actual}, the soak moved {expected}")
        if self.connection is not None:
            self.connection.close()
        return checked, wrong


def _credentials(email: str) -> dict[str, str]:
    return {"email": email, "password": PASSWORD}


# --- memory -----------------------------------------------------------------------------------


def group_rss(leader: int) -> int:
    """Bytes of VmRSS of `leader` and every process in its process group."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            pid = int(entry)
            if pid != leader:
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[2]) != leader:
                    continue
            status = Path(f"/proc/{entry}/status").read_text()
        except (OSError, ValueError, IndexError):
            continue  # gone in between
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


@dataclasses.dataclass
class Samples:
    """RSS samples per process: (seconds since the load began, bytes)."""

    pids: dict[str, int]
    points: dict[str, list[tuple[float, int]]] = dataclasses.field(default_factory=dict)

    def take(self, elapsed: float) -> None:
        for name, pid in self.pids.items():
            self.points.setdefault(name, []).append((elapsed, group_rss(pid)))


def slope_per_minute(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS over time, MiB per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_r = sum(r for _, r in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return 0.0
    covariance = sum((t - mean_t) * (r - mean_r) for t, r in points)
    return covariance / spread * 60 / _MiB


# --- the run ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    seconds: float
    workers: int
    warm_up_s: float
    tally: Tally
    checking: Tally
    samples: Samples
    checked: int
    mismatches: list[str]
    moved: tuple[int, int, int]  # deposited, paid, refunded (minor units)

    @property
    def ok(self) -> bool:
        failures = self.tally.failures + self.checking.failures
        return failures == 0 and not self.mismatches and self.checked > 0


async def soak(seconds: float, workers: int, sample_s: float, data_dir: Path) -> Result:
    """Start the stack, run the traffic, sample RSS; the counts and samples."""
    registry = load_registry()
    ports = free_ports(registry.services)
    limits = write_unreachable_budgets(data_dir.parent / "rate-limits.toml")
    environ = {**os.environ, "PAYNOW_EDGE_RATE_LIMITS_FILE": str(limits)}
    environ.pop("PAYNOW_INTERNAL_TOKEN", None)
    async with start_stack(data_dir, ports=ports, env=environ) as stack:
        return await _drive(stack, ports["edge"], seconds, workers, sample_s)


async def _drive(stack: Stack, port: int, seconds: float, workers: int, sample_s: float) -> Result:
    samples = Samples({name: service.pid for name, service in stack.processes.items()})
    tally, stop, hashing = Tally(), threading.Event(), threading.Semaphore(HASHING_AT_ONCE)
    crew = [Worker(i, port, tally, stop, hashing) for i in range(workers)]
    loop = asyncio.get_running_loop()
    begun = loop.time()
    until = time.monotonic() + seconds
    warm_up_s = seconds * WARM_UP_SHARE
    threads = [asyncio.to_thread(w.run, until) for w in crew]
    load = asyncio.ensure_future(asyncio.gather(*threads))
    try:
        await asyncio.wait({load}, timeout=warm_up_s)
        samples.take(loop.time() - begun)
        while not load.done():
            await asyncio.wait({load}, timeout=sample_s)
            if not load.done():
                samples.take(loop.time() - begun)
        await load
        elapsed = loop.time() - begun
        samples.take(elapsed)
    finally:
        stop.set()
        await asyncio.gather(load, return_exceptions=True)
    checking = Tally()  # the final balance reads are not part of the load's figures
    for worker in crew:
        worker.tally = checking
    checks = await asyncio.gather(*(asyncio.to_thread(w.check_balances) for w in crew))
    moved = (
        sum(w.deposited for w in crew),
        sum(w.paid_total for w in crew),
        sum(w.refunded_total for w in crew),
    )
    return Result(
        seconds=elapsed,
        workers=workers,
        warm_up_s=warm_up_s,
        tally=tally,
        checking=checking,
        samples=samples,
        checked=sum(c for c, _ in checks),
        mismatches=[m for _, wrong in checks for m in wrong],
        moved=moved,
    )


# --- the report -------------------------------------------------------------------------------


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0


def process_table(samples: Samples) -> list[str]:
    lines = [
        "| process | RSS after warm-up MiB | RSS at end MiB | growth MiB | growth % "
        "| slope MiB/min | samples |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, points in samples.points.items():
        first, last = points[0][1] / _MiB, points[-1][1] / _MiB
        growth = last - first
        share = growth / first * 100 if first else 0.0
        lines.append(
            f"| {name} | {first:.1f} | {last:.1f} | {growth:+.1f} | {share:+.1f} % "
            f"| {slope_per_minute(points):+.2f} | {len(points)} |"
        )
    return lines


def _euros(minor_units: int) -> str:
    """Minor units as a decimal amount, by integer arithmetic (money is never a float)."""
    sign = "-" if minor_units < 0 else ""
    whole, cents = divmod(abs(minor_units), 100)
    return f"{sign}{whole}.{cents:02d}"


def report(result: Result) -> str:
    tally = result.tally
    total = tally.total
    rate = total / result.seconds if result.seconds else 0.0
    deposited, paid, refunded = result.moved
    p50 = _percentile(tally.latencies, 0.5) * 1000
    p99 = _percentile(tally.latencies, 0.99) * 1000
    verdict = "PASS" if result.ok else "FAIL"
    load = os.getloadavg()[1]  # the 5-minute average: how busy the shared machine was
    lines = [
        f"{datetime.date.today().isoformat()}: {result.seconds:.0f} s of mixed traffic, "
        f"{result.workers} workers, warm-up {result.warm_up_s:.0f} s; {total} requests, "
        f"{rate:.0f} requests/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms; load average "
        f"{load:.1f} on {os.cpu_count()} cores. **{verdict}**.",
        "",
        *process_table(result.samples),
        "",
        "| outcome | requests | share |",
        "|---|---|---|",
    ]
    for outcome in OUTCOMES:
        count = tally.outcomes[outcome]
        lines.append(f"| {outcome} | {count} | {count / total * 100 if total else 0:.1f} % |")
    mix = ", ".join(f"{op} {n}" for op, n in tally.operations.most_common())
    mismatch = len(result.mismatches)
    lines += [
        "",
        f"Money: {result.checked} balances checked against what the soak moved "
        f"(deposits {_euros(deposited)}, payments {_euros(paid)}, refunds "
        f"{_euros(refunded)} EUR): {mismatch} mismatches.",
        "",
        f"Requests by operation: {mix}.",
    ]
    return "\n".join(lines)


HOW_TO_READ = """\
How to read it: compare each process's RSS at the end with its RSS after the warm-up, not
the absolute size. Caches (verified JWTs, API-key verdicts, SQLAlchemy's statement cache,
SQLite pages, gRPC channels) and the allocator fill during the warm-up and then level off,
so a step of a few MiB is expected; a leak is a slope that stays positive through the whole
run and grows with its length (rerun with `--minutes 15`: a cache flattens, a leak keeps
climbing at the same MiB/min). The machine has 2 cores that other jobs share while the soak
runs, so requests/s and latencies are noisy; the error counts are not: any 5xx, transport
error, unexpected status or balance mismatch fails the run."""


def write_doc(path: Path, markdown: str) -> None:
    """Replace the Soak section's marked block, adding the section (heading, intro) the
    first time; the rest of the document, bench sections included, is left as it is."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if f"<!-- bench:{SECTION} -->" not in text:
        path.write_text(f"{text.rstrip()}\n\n{HEADING}\n\n{INTRO}\n", encoding="utf-8")
    write_section(path, SECTION, f"{markdown}\n\n{HOW_TO_READ}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, default=3.0, help="length of the run (3)")
    length.add_argument("--seconds", type=float, help="length of the run, for a short smoke")
    parser.add_argument("--workers", type=int, default=12, help="concurrent clients (12)")
    parser.add_argument("--sample-s", type=float, default=10.0, help="RSS sample interval (10)")
    parser.add_argument("--write", type=Path, help="also write the Soak section of this file")
    args = parser.parse_args()
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    sample_s = min(args.sample_s, max(1.0, seconds / 10))
    with tempfile.TemporaryDirectory(prefix="paynow-soak-") as temp:
        try:
            result = asyncio.run(soak(seconds, args.workers, sample_s, Path(temp) / "data"))
        except StackError as error:
            print(f"soak: the stack did not start: {error}", file=sys.stderr)
            return 2
    markdown = report(result)
    print(markdown)
    problems = result.tally.problems + result.checking.problems + result.mismatches[:20]
    for problem in problems:
        print(f"soak: {problem}", file=sys.stderr)
    if args.write is not None:
        write_doc(args.write, markdown)
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
