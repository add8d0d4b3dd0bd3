"""Path templates: the http.proto grammar, percent-decoding, verbs and the trie's priorities."""

from __future__ import annotations

import pytest

from services.edge.routing import Router, TemplateError, Variable, parse_template


def _router(*entries: tuple[str, str]) -> Router[str]:
    router: Router[str] = Router()
    for method, text in entries:
        router.add(method, parse_template(text), f"{method} {text}")
    return router


def _bind(router: Router[str], method: str, path: str) -> tuple[str, dict[str, str]] | None:
    found = router.match(method, path)
    if found is None:
        return None
    route, segments = found
    template = parse_template(route.split(" ", 1)[1])
    return route, {v.field_path: v.extract(segments) for v in template.variables}


def test_literal_template_has_segments_and_no_variables() -> None:
    """`/v1/shelves` parses to two literal segments."""
    template = parse_template("/v1/shelves")
    assert template.segments == ("v1", "shelves")
    assert template.variables == ()
    assert template.verb == ""


def test_bare_variable_means_one_segment() -> None:
    """`{id}` is `{id=*}`: one segment, single-segment decoding."""
    template = parse_template("/v1/shelves/{id}")
    assert template.segments == ("v1", "shelves", "*")
    assert template.variables == (Variable("id", 2, 3, multi=False),)


def test_variable_with_sub_template_spans_its_segments() -> None:
    """`{name=shelves/*/books/*}` captures four segments."""
    template = parse_template("/v1/{name=shelves/*/books/*}")
    assert template.segments == ("v1", "shelves", "*", "books", "*")
    assert template.variables == (Variable("name", 1, 5, multi=True),)


def test_double_star_variable_runs_to_the_end() -> None:
    """`{name=**}` has no end index: it takes every remaining segment."""
    assert parse_template("/v1/{name=**}").variables == (Variable("name", 1, None, multi=True),)


def test_nested_field_path_is_kept_dotted() -> None:
    """`{book.name}` binds the nested field path."""
    assert parse_template("/v1/{book.name}").variables[0].field_path == "book.name"


def test_custom_verb_is_split_off() -> None:
    """`:approve` after the last segment is the verb."""
    template = parse_template("/v1/{name=payments/*}:approve")
    assert template.verb == "approve"
    assert template.segments == ("v1", "payments", "*")


@pytest.mark.parametrize(
    "text",
    [
        "v1/shelves",
        "/v1//shelves",
        "/v1/{id",
        "/v1/{a{b}}",
        "/v1/{9x}",
        "/v1/**/tail",
        "/v1/{id}/{id}",
        "/v1/{id}:",
        "/v1/sh*lves",
    ],
)
def test_malformed_templates_are_rejected(text: str) -> None:
    """Each grammar violation raises TemplateError."""
    with pytest.raises(TemplateError):
        parse_template(text)


def test_literal_wins_over_variable() -> None:
    """`/v1/shelves/default` prefers the literal route to `{id}`."""
    router = _router(("GET", "/v1/shelves/{id}"), ("GET", "/v1/shelves/default"))
    assert _bind(router, "GET", "/v1/shelves/default") == ("GET /v1/shelves/default", {})
    assert _bind(router, "GET", "/v1/shelves/s1") == ("GET /v1/shelves/{id}", {"id": "s1"})


def test_matching_backtracks_from_a_dead_literal_branch() -> None:
    """A literal prefix that leads nowhere falls back to the wildcard route."""
    router = _router(("GET", "/v1/a/b/c"), ("GET", "/v1/{x}/b/d"))
    assert _bind(router, "GET", "/v1/a/b/d") == ("GET /v1/{x}/b/d", {"x": "a"})


def test_bare_star_matches_without_binding() -> None:
    """A `*` outside a variable matches one segment and binds nothing."""
    router = _router(("GET", "/v1/any/*/shelves/{id}"))
    assert _bind(router, "GET", "/v1/any/zz/shelves/7") == (
        "GET /v1/any/*/shelves/{id}",
        {"id": "7"},
    )


def test_double_star_matches_zero_or_more_segments() -> None:
    """`**` takes the rest of the path, including nothing."""
    router = _router(("GET", "/v1/files/{path=**}"))
    assert _bind(router, "GET", "/v1/files/a/b/c")[1] == {"path": "a/b/c"}  # type: ignore[index]
    assert _bind(router, "GET", "/v1/files")[1] == {"path": ""}  # type: ignore[index]


def test_star_does_not_match_an_empty_segment() -> None:
    """A trailing slash leaves an empty segment that `{id}` refuses."""
    assert _router(("GET", "/v1/shelves/{id}")).match("GET", "/v1/shelves/") is None


def test_verb_routes_to_the_custom_method() -> None:
    """`/v1/payments/p1:approve` reaches the verb route with `p1` bound."""
    router = _router(("GET", "/v1/payments/{id}"), ("POST", "/v1/payments/{id}:approve"))
    assert _bind(router, "POST", "/v1/payments/p1:approve") == (
        "POST /v1/payments/{id}:approve",
        {"id": "p1"},
    )


def test_colon_in_a_value_is_not_a_verb_when_no_verb_route_matches() -> None:
    """An id containing ':' still binds whole when no verb route exists."""
    router = _router(("GET", "/v1/payments/{id}"))
    assert _bind(router, "GET", "/v1/payments/urn:x")[1] == {"id": "urn:x"}  # type: ignore[index]


def test_verb_on_a_literal_template() -> None:
    """`/v1/auth:login` has literal segments and a verb."""
    router = _router(("POST", "/v1/auth:login"), ("POST", "/v1/auth:register"))
    assert _bind(router, "POST", "/v1/auth:register") == ("POST /v1/auth:register", {})


def test_single_segment_variable_decodes_everything() -> None:
    """`{id}` decodes %2F and %20 alike (RFC 6570 simple expansion reversed)."""
    router = _router(("GET", "/v1/shelves/{id}"))
    assert _bind(router, "GET", "/v1/shelves/a%20b%2Fc")[1] == {"id": "a b/c"}  # type: ignore[index]


def test_multi_segment_variable_keeps_encoded_slashes() -> None:
    """`{name=**}` decodes everything except %2F and %2f, which stay as sent."""
    router = _router(("GET", "/v1/{name=**}"))
    bound = _bind(router, "GET", "/v1/a%20b/c%2Fd%2fe")[1]  # type: ignore[index]
    assert bound == {"name": "a b/c%2Fd%2fe"}


def test_same_path_different_methods_share_a_node() -> None:
    """GET and DELETE of one template are both routed."""
    router = _router(("GET", "/v1/{name=shelves/*}"), ("DELETE", "/v1/{name=shelves/*}"))
    assert router.match("DELETE", "/v1/shelves/1") is not None


def test_allowed_methods_lists_every_method_of_the_path() -> None:
    """A known path reports its methods, for a 405's Allow header."""
    router = _router(("GET", "/v1/shelves/{id}"), ("DELETE", "/v1/shelves/{id}"))
    assert router.match("PUT", "/v1/shelves/1") is None
    assert router.allowed_methods("/v1/shelves/1") == ["DELETE", "GET"]


def test_unknown_path_has_no_allowed_methods() -> None:
    """No template matches, so the answer is 404, not 405."""
    assert _router(("GET", "/v1/shelves")).allowed_methods("/v2/x") == []


def test_duplicate_route_is_refused() -> None:
    """Two bindings of the same method and template are a configuration error."""
    with pytest.raises(TemplateError):
        _router(("GET", "/v1/{id}"), ("GET", "/v1/{name}"))


def test_matching_cost_does_not_depend_on_the_number_of_routes() -> None:
    """With 5,000 routes the trie still visits one node per path segment."""
    router = _router(*(("GET", f"/v1/r{i}/{{id}}/items") for i in range(5000)))
    assert _bind(router, "GET", "/v1/r4999/x/items") == ("GET /v1/r4999/{id}/items", {"id": "x"})
    assert len(router._root.literals["v1"].literals) == 5000  # one dict lookup, not a scan
