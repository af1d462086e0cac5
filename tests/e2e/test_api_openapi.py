"""The OpenAPI document describes every route of /api/v1 and nothing else (URS-INT-01)."""
# ruff: noqa: F811  (pytest fixtures imported from test_api_support are parameters of the tests)
from __future__ import annotations

import re

import pytest
from test_api_support import API, api, app  # noqa: F401  fixtures

METHODS = {"get", "put", "post", "delete", "patch"}


def _document(api) -> dict:
    resp = api.anonymous.get(f"{API}/openapi.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    return resp.get_json()


def _routes(app) -> dict[str, set[str]]:
    """{"/records/{record_id}": {"get"}, ...} from Flask's URL map."""
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API + "/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule[len(API):])
        routes.setdefault(path, set()).update(m.lower() for m in rule.methods if m.lower() in METHODS)
    return routes


@pytest.mark.urs("URS-INT-01")
def test_every_route_is_described_and_every_description_has_a_route(app, api):
    doc = _document(api)
    routes = _routes(app)
    assert routes, "no API routes found"
    described = {path: {m for m in ops if m in METHODS} for path, ops in doc["paths"].items()}
    assert described == routes


@pytest.mark.urs("URS-INT-01")
def test_document_structure_is_valid(api):
    doc = _document(api)
    try:
        from openapi_spec_validator import validate  # optional: not a dependency of the project
    except ImportError:
        validate = None
    if validate is not None:
        validate(doc)
    assert doc["openapi"].startswith("3.1.")
    assert {"openapi", "info", "paths", "components"} <= set(doc)
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["servers"] == [{"url": "/api/v1"}]
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["bearerAuth"]
        ["description"]}
    error = doc["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "message", "details"]

    op_ids = []
    for path, ops in doc["paths"].items():
        params_in_path = set(re.findall(r"{([^}]+)}", path))
        for method, op in ops.items():
            op_ids.append(op["operationId"])
            assert op["summary"] and op["responses"], (path, method)
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == params_in_path, (path, method)
            assert all(p["required"] for p in op.get("parameters", []) if p["in"] == "path")
            for status in op["responses"]:
                assert re.fullmatch(r"[1-5]\d\d", status), (path, method, status)
            if method == "post" and path not in ("/batches/{coi}/results",):
                assert "requestBody" in op, (path, method)
            public = path in ("/tokens", "/openapi.json")
            assert (op.get("security") == []) is public, (path, method)
            if not public:
                assert "401" in op["responses"], (path, method)
    assert len(op_ids) == len(set(op_ids)), "operationIds must be unique"

    # Every $ref points at something that exists.
    def refs(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for item in node:
                yield from refs(item)

    for ref in refs(doc):
        assert ref.startswith("#/"), ref
        target = doc
        for part in ref[2:].split("/"):
            assert part in target, f"dangling {ref}"
            target = target[part]


def test_request_schemas_in_the_document_are_the_ones_the_server_enforces(api):
    from webapp.api.schemas import REQUEST_SCHEMAS

    schemas = _document(api)["components"]["schemas"]
    for name, schema in REQUEST_SCHEMAS.items():
        assert schemas[name] == schema
