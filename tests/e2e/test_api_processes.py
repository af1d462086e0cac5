"""Diagrams as configuration items through the API: list, read, submit drafts safely (URS-VAL-01)."""
# ruff: noqa: F811  (pytest fixtures imported from test_api_support are parameters of the tests)
from __future__ import annotations

import hashlib

import pytest
from test_api_support import api, app, assert_error  # noqa: F401  fixtures

from conftest import PASSWORD
from engine.settings import REPO_ROOT

DEVIATION_BPMN = (REPO_ROOT / "processes" / "deviation.bpmn").read_bytes()


@pytest.fixture
def paula(api, loaded_runtime):
    loaded_runtime.add_user(None, "paula", "Paula Process-Owner", PASSWORD, ["Process Owner"])
    return api.login("paula")


def _versions(caller, key: str = "deviation") -> list[tuple[int, str]]:
    """(version, status) of one process as the caller sees them (other diagrams are loaded too)."""
    resp = caller.get("/processes")
    assert resp.status_code == 200
    return [(v["version"], v["status"]) for v in resp.get_json() if v["key"] == key]


def _revised() -> bytes:
    body = DEVIATION_BPMN.replace(b'<bpmn:process id="deviation" name="Deviation"',
                                  b'<bpmn:process id="deviation" name="Deviation (revised)"')
    assert body != DEVIATION_BPMN
    return body


@pytest.mark.urs("URS-VAL-01")
def test_released_diagram_is_listed_with_its_hash_and_served_as_xml(api):
    olivia = api.login("olivia")
    listed = olivia.get("/processes").get_json()
    sha = hashlib.sha256(DEVIATION_BPMN).hexdigest()
    assert [(v["key"], v["name"], v["version"], v["sha256"], v["status"]) for v in listed
            if v["key"] == "deviation"] == [("deviation", "Deviation", 1, sha, "released")]
    assert {v["status"] for v in listed} == {"released"}
    assert [(v["key"], v["version"]) for v in listed] == sorted((v["key"], v["version"]) for v in listed)
    resp = olivia.get("/processes/deviation/versions/1/bpmn")
    assert resp.status_code == 200 and resp.mimetype == "application/xml"
    assert resp.data == DEVIATION_BPMN and resp.headers["ETag"] == f'"{sha}"'


@pytest.mark.urs("URS-VAL-01")
def test_process_owner_submits_a_draft_that_only_process_owners_see(api, paula):
    body = _revised()
    resp = paula.post_raw("/processes/deviation/versions", body, "application/xml")
    assert resp.status_code == 201, resp.get_json()
    draft = resp.get_json()
    assert draft["key"] == "deviation" and draft["version"] == 2 and draft["status"] == "draft"
    assert draft["name"] == "Deviation (revised)"
    assert draft["sha256"] == hashlib.sha256(body).hexdigest()
    assert resp.headers["Location"].endswith("/api/v1/processes/deviation/versions/2/bpmn")

    assert _versions(paula) == [(1, "released"), (2, "draft")]
    assert paula.get("/processes/deviation/versions/2/bpmn").data == body
    olivia = api.login("olivia")
    assert _versions(olivia) == [(1, "released")]
    assert_error(olivia.get("/processes/deviation/versions/2/bpmn"), 404, "not_found")
    # New records still start on the released version (a draft is not in use).
    assert olivia.raise_deviation()["process_version"] == 1
    # The upload is in the audit trail, attributed to the process owner.
    trail = api.login("quinn").get("/audit?limit=1000").get_json()["items"]
    loads = [(e["user"], e["new"]["version"], e["new"]["status"]) for e in trail if e["action"] == "diagram_loaded"]
    assert ("paula", 2, "draft") in loads


def _with_doctype(doctype: bytes, old: bytes, new: bytes) -> bytes:
    body = DEVIATION_BPMN.split(b"?>", 1)[1]
    assert old in body
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + doctype + b"\n" + body.replace(old, new, 1)


@pytest.mark.urs("URS-VAL-01")
def test_diagram_with_an_external_entity_is_refused_without_leaking_the_file(api, paula, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER-4711")
    doctype = b'<!DOCTYPE bpmn:definitions [<!ENTITY xxe SYSTEM "file://' + str(secret).encode() + b'">]>'
    process = b'<bpmn:process id="deviation" name="Deviation" isExecutable="true">'
    in_text = _with_doctype(doctype, process, process + b"<bpmn:documentation>&xxe;</bpmn:documentation>")
    in_attribute = _with_doctype(doctype, b'name="Deviation"', b'name="&xxe;"')
    bomb = _with_doctype(b'<!DOCTYPE bpmn:definitions [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">'
                         b'<!ENTITY c "&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;">]>',
                         process, process + b"<bpmn:documentation>&d;</bpmn:documentation>")

    resp = paula.post_raw("/processes/deviation/versions", in_text, "application/xml")
    err = assert_error(resp, 422, "dtd_refused")
    assert "DOCTYPE" in err["message"]
    for diagram in (in_text, in_attribute, bomb):
        resp = paula.post_raw("/processes/deviation/versions", diagram, "application/xml")
        assert_error(resp, 422)
        assert b"TOP-SECRET-MARKER" not in resp.data and str(secret).encode() not in resp.data
        assert b"aaaaaaaaaa" not in resp.data
    assert _versions(paula) == [(1, "released")]


@pytest.mark.urs("URS-VAL-01")
@pytest.mark.urs("URS-PLT-04")
def test_invalid_diagrams_are_422_with_the_parsers_reason(api, paula):
    unsafe = DEVIATION_BPMN.replace(b'decision == "approve"', b"__import__('os').system('id')")
    err = assert_error(paula.post_raw("/processes/deviation/versions", unsafe, "application/xml"), 422,
                       "unsafe_expression")
    assert "flow_approved_to_join" in err["message"]
    err = assert_error(paula.post_raw("/processes/deviation/versions", b"<bpmn:definitions", "application/xml"),
                       422, "invalid_xml")
    assert "well-formed" in err["message"]
    err = assert_error(paula.post_raw("/processes/capa/versions", DEVIATION_BPMN, "application/xml"), 422)
    assert "capa" in err["message"]
    assert_error(paula.post_raw("/processes/deviation/versions", b"", "application/xml"), 422)
    assert _versions(paula) == [(1, "released")]


@pytest.mark.urs("URS-VAL-01")
@pytest.mark.urs("URS-SEC-02")
def test_only_process_owners_submit_diagrams_as_xml_within_the_size_limit(api, paula, loaded_runtime):
    for user in ("quinn", "olivia", "hannah"):
        err = assert_error(api.login(user).post_raw("/processes/deviation/versions", _revised(), "application/xml"),
                           403, "not_in_role")
        assert err["details"]["required_roles"] == ["Process Owner"]
    assert_error(paula.post_raw("/processes/deviation/versions", _revised(), "application/json"), 415,
                 "unsupported_media_type")
    loaded_runtime.settings.max_bpmn_bytes = 10_000
    err = assert_error(paula.post_raw("/processes/deviation/versions", _revised(), "application/xml"), 413,
                       "too_large")
    assert err["details"]["limit_bytes"] == 10_000
    assert _versions(paula) == [(1, "released")]
