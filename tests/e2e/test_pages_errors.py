"""Friendly error pages without stack traces, and escaping of hostile text on every page (XSS)."""
from __future__ import annotations

import pytest

from tests.e2e.conftest import approve, investigate, open_task, raise_deviation, triage

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.mark.urs("URS-SEC-02")
def test_404_page_is_friendly(as_user, client):
    resp = as_user("quinn").get("/no/such/page")
    assert resp.status_code == 404
    html = resp.get_data(as_text=True)
    assert "<h1>Not found</h1>" in html and "Go to your inbox" in html
    assert client.get("/no/such/page").status_code == 404  # also when logged out


@pytest.mark.urs("URS-SEC-02")
def test_405_page_is_friendly(as_user):
    resp = as_user("quinn").post("/records")
    assert resp.status_code == 405 and "Not allowed here" in resp.get_data(as_text=True)


@pytest.mark.urs("URS-SEC-02")
def test_500_page_shows_no_stack_trace(app, as_user):
    def boom():
        raise RuntimeError("secret internal detail")

    app.add_url_rule("/boom", "boom", boom)
    resp = as_user("quinn").get("/boom")
    assert resp.status_code == 500
    html = resp.get_data(as_text=True)
    assert "Something went wrong" in html and "nothing was changed" in html
    assert "secret internal detail" not in html and "Traceback" not in html and "RuntimeError" not in html


@pytest.mark.urs("URS-INT-01")
def test_api_errors_stay_json(client):
    resp = client.get("/api/v1/no-such-thing")
    assert resp.status_code == 404 and resp.is_json and resp.json["error"]["code"] == "not_found"


@pytest.mark.urs("URS-SEC-02")
def test_a_hostile_title_is_escaped_on_every_page(as_user, loaded_runtime, cast):
    rt = loaded_runtime
    record = raise_deviation(rt, cast["olivia"], title=XSS, batch_ref=XSS, description=f"line 1\n{XSS}")
    triage(rt, record, cast["quinn"])
    investigate(rt, record, cast["ivan"])
    task = open_task(rt, record, "approve_investigation")
    c = as_user("quentin")
    pages = {
        "inbox": c.get("/"),
        "inbox partial": c.get("/?sort=title", headers={"HX-Request": "true"}),
        "records": c.get("/records"),
        "search": c.get("/records?q=script", headers={"HX-Request": "true"}),
        "record": c.get(f"/records/{record.number}"),
        "audit": c.get(f"/records/{record.number}/audit", headers={"HX-Request": "true"}),
        "task": c.get(f"/tasks/{task.id}"),
        "signing step": c.post(f"/tasks/{task.id}", data={"_action": "review", "decision": "approve",
                                                          "comment": XSS}),
        "correction": as_user("quinn").get(f"/records/{record.number}/correct/start"),
    }
    for name, resp in pages.items():
        html = resp.get_data(as_text=True)
        assert XSS not in html, name
        assert ESCAPED in html, name
    approve(rt, record, cast["quentin"])
    html = c.get(f"/records/{record.number}").get_data(as_text=True)
    assert XSS not in html and ESCAPED in html


@pytest.mark.urs("URS-SEC-02")
def test_a_hostile_name_is_escaped_in_administration(as_user, admin, loaded_runtime):
    loaded_runtime.add_user(None, "mallory", XSS, "Correct-horse-9", ["Initiator"])
    for url in ("/admin/users", "/admin/users/mallory"):
        html = as_user("ada").get(url).get_data(as_text=True)
        assert XSS not in html and ESCAPED in html, url
