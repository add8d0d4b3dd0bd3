"""The contracts as the edge and the services read them: the generated descriptor set."""

from __future__ import annotations

import pytest

from paynow.account.v1 import errors_pb2 as account_errors
from paynow.api.v1 import annotations_pb2
from paynow.auth.v1 import errors_pb2 as auth_errors
from paynow.merchant.v1 import errors_pb2 as merchant_errors

from .descriptors import (
    access_rule,
    descriptor_set,
    documented_elements,
    http_rule,
    paynow_files,
    rpcs,
)

ALL_RPCS = sorted(rpcs(), key=lambda item: item[0])
RPC_IDS = [name for name, _ in ALL_RPCS]
INTERNAL = annotations_pb2.ACCESS_INTERNAL
PUBLIC = annotations_pb2.ACCESS_PUBLIC

# Reasons the framework itself raises (validation, access, overload, idempotency, storage),
# so every service must list them.
FRAMEWORK_REASONS = {
    "INVALID_REQUEST",
    "UNAUTHENTICATED",
    "PERMISSION_DENIED",
    "INTERNAL",
    "OVERLOADED",
    "INVALID_PAGE_TOKEN",
    "IDEMPOTENCY_KEY_REUSED",
    "REQUEST_IN_PROGRESS",
    "STORAGE_UNAVAILABLE",
    "NOT_IMPLEMENTED",
}


def test_descriptor_set_includes_imports_and_source_info() -> None:
    """The set carries every imported file and the comments, which the edge and docs need."""
    names = {file.name for file in descriptor_set().file}
    assert {"google/api/http.proto", "buf/validate/validate.proto"} <= names
    assert all(file.HasField("source_code_info") for file in paynow_files())


def test_every_registry_service_has_its_contract_and_no_other() -> None:
    """The gRPC services in the descriptors are exactly those the registry says run."""
    from services.framework import load_registry

    registry = load_registry()
    declared = {s for name in registry.services for s in registry.entry(name).grpc_services}
    services = {name.split("/")[0] for name in RPC_IDS}
    assert services == declared
    assert {"paynow.account.v1.AccountService", "paynow.merchant.v1.PaymentService"} <= services


@pytest.mark.parametrize(("rpc", "method"), ALL_RPCS, ids=RPC_IDS)
def test_every_rpc_sets_its_access_explicitly(rpc: str, method: object) -> None:
    """Each RPC names who may call it; INTERNAL and PUBLIC stand alone."""
    allow = list(access_rule(method).allow)  # type: ignore[arg-type]
    assert allow, f"{rpc} has no (paynow.api.v1.access) option"
    assert annotations_pb2.ACCESS_UNSPECIFIED not in allow
    if INTERNAL in allow or PUBLIC in allow:
        assert len(allow) == 1, f"{rpc}: INTERNAL and PUBLIC cannot be combined with others"


@pytest.mark.parametrize(("rpc", "method"), ALL_RPCS, ids=RPC_IDS)
def test_routed_rpcs_have_http_rules_and_internal_ones_none(rpc: str, method: object) -> None:
    """Every non-INTERNAL RPC is reachable over REST; an INTERNAL one never is."""
    internal = INTERNAL in access_rule(method).allow  # type: ignore[arg-type]
    has_http = http_rule(method) is not None  # type: ignore[arg-type]
    assert has_http != internal, f"{rpc}: internal={internal} but http annotation={has_http}"


@pytest.mark.parametrize("file", paynow_files(), ids=lambda f: f.name)
def test_every_element_has_a_comment(file: object) -> None:
    """Comments become the API reference, so no service, RPC, message, field or enum lacks one."""
    locations = file.source_code_info.location  # type: ignore[attr-defined]
    commented = {tuple(loc.path) for loc in locations if loc.leading_comments.strip()}
    missing = [e.name for e in documented_elements(file) if e.path not in commented]  # type: ignore[arg-type]
    assert not missing, f"no leading comment on: {', '.join(missing)}"


@pytest.mark.parametrize(
    "enum", [account_errors.ErrorReason, auth_errors.ErrorReason, merchant_errors.ErrorReason]
)
def test_every_service_lists_the_framework_reasons(enum: object) -> None:
    """A service's ErrorReason covers the reasons the framework raises on its behalf."""
    values = enum.DESCRIPTOR.values  # type: ignore[attr-defined]
    reasons = {value.name.removeprefix("ERROR_REASON_") for value in values}
    assert reasons >= FRAMEWORK_REASONS, FRAMEWORK_REASONS - reasons


@pytest.mark.parametrize(
    "enum", [account_errors.ErrorReason, auth_errors.ErrorReason, merchant_errors.ErrorReason]
)
def test_error_reasons_fit_aip_193(enum: object) -> None:
    """Wire reasons are UPPER_SNAKE and at most 63 characters (AIP-193)."""
    for value in enum.DESCRIPTOR.values:  # type: ignore[attr-defined]
        reason = value.name.removeprefix("ERROR_REASON_")
        assert reason.replace("_", "").isupper() or reason == "UNSPECIFIED"
        assert len(reason) <= 63
