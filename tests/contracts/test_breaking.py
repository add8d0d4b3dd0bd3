"""Each deliberate break of a contract fails a named check; compatible changes pass.

Every test edits a temporary copy of the repository's protos and runs the same command as
`make breaking` there, against the committed baseline.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "protos/paynow/account/v1/account.proto"
ACCOUNT_SERVICE = "protos/paynow/account/v1/account_service.proto"
PAYMENT_SERVICE = "protos/paynow/merchant/v1/payment_service.proto"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    for name in ("protos", "scripts"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def edit(repo: Path, path: str, old: str, new: str) -> None:
    file = repo / path
    text = file.read_text()
    assert old in text, f"{old!r} not in {path}"
    file.write_text(text.replace(old, new, 1))


def breaking(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(repo / "scripts" / "contracts.py"), "breaking"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


def assert_breaks(repo: Path, check: str, *words: str) -> None:
    result = breaking(repo)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip().startswith(check)]
    assert any(all(w in line for w in words) for line in lines), result.stdout


def test_the_committed_protos_match_the_baseline(repo: Path) -> None:
    """No unannounced break is committed: the tree passes its own check."""
    result = breaking(repo)
    assert result.returncode == 0, result.stdout + result.stderr


def test_removing_a_field_breaks(repo: Path) -> None:
    """A deleted field is named by buf breaking."""
    edit(repo, ACCOUNT, "  string etag = 11;\n", "")
    assert_breaks(repo, "buf breaking", "etag")


def test_renumbering_a_field_breaks(repo: Path) -> None:
    """A field moved to another number is a wire break."""
    edit(repo, ACCOUNT, "string etag = 11;", "string etag = 12;")
    assert_breaks(repo, "buf breaking", "11")


def test_changing_a_field_type_breaks(repo: Path) -> None:
    """int64 → string changes the wire and JSON form."""
    edit(
        repo,
        ACCOUNT,
        "int64 balance_minor = 7",
        "string balance_minor = 7",
    )
    assert_breaks(repo, "buf breaking", "balance_minor")


def test_renaming_an_rpc_breaks(repo: Path) -> None:
    """A renamed RPC is a removed RPC for every existing client."""
    edit(repo, ACCOUNT_SERVICE, "rpc GetAccount(", "rpc FetchAccount(")
    assert_breaks(repo, "buf breaking", "GetAccount")


def test_changing_an_http_path_breaks(repo: Path) -> None:
    """A moved route is named with the method and the route clients still call."""
    edit(
        repo, PAYMENT_SERVICE, 'post: "/v1/payments/{id}:approve"', 'post: "/v1/payments/{id}:pay"'
    )
    assert_breaks(repo, "http", "ApprovePayment", "POST /v1/payments/{id}:approve")


def test_changing_an_http_verb_breaks(repo: Path) -> None:
    """GET → POST on the same path breaks every client of the GET."""
    edit(repo, PAYMENT_SERVICE, 'get: "/v1/payments/{id}"', 'post: "/v1/payments/{id}"')
    assert_breaks(repo, "http", "GetPayment", "GET /v1/payments/{id}")


def test_making_an_optional_field_required_in_validation_breaks(repo: Path) -> None:
    """A new rule on an existing field refuses requests that used to pass."""
    edit(
        repo,
        PAYMENT_SERVICE,
        "string description = 3 [(buf.validate.field).string.max_len = 500];",
        "string description = 3 [(buf.validate.field).string = {\n"
        "    min_len: 1\n    max_len: 500\n  }];",
    )
    assert_breaks(repo, "validation", "CreatePaymentRequest.description", "min_len")


def test_loosening_a_validation_rule_is_compatible(repo: Path) -> None:
    """A larger maximum accepts everything it accepted before."""
    edit(
        repo,
        PAYMENT_SERVICE,
        "string description = 3 [(buf.validate.field).string.max_len = 500];",
        "string description = 3 [(buf.validate.field).string.max_len = 1000];",
    )
    result = breaking(repo)
    assert result.returncode == 0, result.stdout


def test_adding_an_optional_field_and_an_rpc_is_compatible(repo: Path) -> None:
    """New fields and new RPCs break nobody."""
    edit(
        repo,
        ACCOUNT,
        "  string etag = 11;\n",
        "  string etag = 11;\n  // A note the owner keeps, at most 200 characters.\n"
        "  string note = 12 [(buf.validate.field).string.max_len = 200];\n",
    )
    edit(
        repo,
        ACCOUNT_SERVICE,
        "  // Lists the caller's accounts",
        "  // Returns how many accounts the caller owns.\n"
        "  rpc CountAccounts(CountAccountsRequest) returns (CountAccountsResponse) {\n"
        '    option (google.api.http) = {get: "/v1/accounts:count"};\n'
        "    option (paynow.api.v1.access) = {\n      allow: [ACCESS_USER]\n    };\n  }\n\n"
        "  // Lists the caller's accounts",
    )
    (repo / ACCOUNT_SERVICE).write_text(
        (repo / ACCOUNT_SERVICE).read_text()
        + "\n// Request for CountAccounts.\nmessage CountAccountsRequest {}\n"
        "\n// Response for CountAccounts.\nmessage CountAccountsResponse {\n"
        "  // How many accounts.\n  int32 count = 1;\n}\n"
    )
    result = breaking(repo)
    assert result.returncode == 0, result.stdout + result.stderr


def test_removing_a_response_field_breaks_the_rest_surface(repo: Path) -> None:
    """The REST check names the route whose response lost a field JSON clients read."""
    edit(repo, ACCOUNT, "  string etag = 11;\n", "")
    assert_breaks(repo, "rest", "GET /v1/accounts/{id}", "etag")


def test_moving_a_route_breaks_the_rest_surface(repo: Path) -> None:
    """A moved route is gone for REST clients too."""
    edit(
        repo, PAYMENT_SERVICE, 'post: "/v1/payments/{id}:approve"', 'post: "/v1/payments/{id}:pay"'
    )
    assert_breaks(repo, "rest", "POST /v1/payments/{id}:approve", "gone")
