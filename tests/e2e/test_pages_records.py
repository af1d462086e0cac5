"""Record page (data, status, tasks, signatures, audit trail, links, diagram) and the records list and search."""
from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from sqlalchemy import update

from models import Record, RecordLink
from tests.e2e.conftest import raise_deviation, triage
from tests.e2e.test_pages_inbox import count_queries


@pytest.mark.urs("URS-SIG-02")
@pytest.mark.urs("URS-AUD-03")
@pytest.mark.urs("URS-PLT-07")
def test_record_page_tells_the_whole_story(as_user, closed, loaded_runtime, cast):
    rt = loaded_runtime
    other = raise_deviation(rt, cast["olivia"], title="Related excursion")
    with rt.db.unit_of_work(None) as s:
        s.add(RecordLink(source_id=closed.id, target_id=other.id, kind="related"))
    html = as_user("quinn").get(f"/records/{closed.number}").get_data(as_text=True)
    assert f'<span class="number">{closed.number}</span> Incubator excursion' in html
    assert '<span class="badge status-closed">Closed</span>' in html
    assert "Deviation, diagram version 1" in html
    # Data, step by step, with the forms' titles.
    for text in ("Raised", "QA triage", "Investigation", "QA approval", "Root cause", "Door seal worn",
                 "Impact on the patient", "<dt>Classification</dt><dd>Minor</dd>"):
        assert text in html, text
    # Tasks with who and when.
    assert "Quinn QA" in html and "Ivan Investigator" in html and "Quentin QA" in html
    assert html.count('<span class="badge task-completed">Completed</span>') == 3
    # The signature's manifestation: printed name, date and time, meaning, validity.
    sig = re.search(r'<div class="signature valid">.*?</div>', html, re.S).group(0)
    assert "Quentin QA" in sig and "Approved" in sig and "Valid" in sig and " UTC" in sig
    # Audit trail with old and new values.
    assert "task_completed" in html and "data.root_cause" in html
    assert '<td class="value">open</td>' in html and '<td class="value">completed</td>' in html
    # Links and the diagram with completed tasks.
    assert f'href="/records/{other.number}"' in html and "related" in html
    diagram = re.search(r'<div id="diagram"[^>]*>', html).group(0)
    assert f'data-xml-url="/records/{closed.number}/diagram.xml"' in diagram
    assert 'data-completed="approve_investigation investigate_deviation triage_deviation"' in diagram
    assert 'data-open=""' in diagram


@pytest.mark.urs("URS-PLT-01")
def test_diagram_xml_is_served_to_those_who_may_see_the_record(as_user, closed, app, loaded_runtime):
    resp = as_user("quinn").get(f"/records/{closed.number}/diagram.xml")
    assert resp.status_code == 200 and resp.mimetype == "application/xml"
    assert b'<bpmn:process id="deviation"' in resp.data
    loaded_runtime.add_user(None, "tom", "Tom Trainer", "Correct-horse-9", ["Trainer"])
    assert as_user("tom").get(f"/records/{closed.number}/diagram.xml").status_code == 404


@pytest.mark.urs("URS-SEC-02")
def test_unknown_or_invisible_record_is_a_404(as_user, closed, loaded_runtime):
    assert as_user("quinn").get("/records/DEV-1999-9999").status_code == 404
    loaded_runtime.add_user(None, "tom", "Tom Trainer", "Correct-horse-9", ["Trainer"])
    resp = as_user("tom").get(f"/records/{closed.number}")
    assert resp.status_code == 404 and "Incubator excursion" not in resp.get_data(as_text=True)


@pytest.mark.urs("URS-AUD-03")
def test_the_audit_trail_can_be_filtered_and_exported(as_user, closed):
    c = as_user("quinn")
    resp = c.get(f"/records/{closed.number}/audit?action=task_completed", headers={"HX-Request": "true"})
    html = resp.get_data(as_text=True)
    assert "<html" not in html and "3 entries" in html
    assert "task_completed" in html and "data.root_cause" not in html
    html = c.get(f"/records/{closed.number}/audit?user=ivan", headers={"HX-Request": "true"}).get_data(as_text=True)
    users = set(re.findall(r"<td>(olivia|quinn|ivan|quentin)</td>", html))
    assert users == {"ivan"}
    html = c.get(f"/records/{closed.number}?field=root_cause").get_data(as_text=True)
    assert "data.root_cause" in html and "data.classification" not in html
    future = (dt.date.today() + dt.timedelta(days=3)).isoformat()
    html = c.get(f"/records/{closed.number}/audit?since={future}", headers={"HX-Request": "true"}).get_data(
        as_text=True)
    assert "No entries match." in html
    # Without htmx the partial URL leads to the full page.
    assert c.get(f"/records/{closed.number}/audit?user=ivan").status_code == 302
    export = c.get(f"/records/{closed.number}/audit.csv")
    assert export.mimetype == "text/csv" and "attachment" in export.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(export.get_data(as_text=True))))
    assert rows[0][:4] == ["seq", "at_utc", "user", "action"]
    assert any(r[3] == "task_completed" for r in rows[1:])


@pytest.mark.urs("URS-REP-02")
def test_records_search_by_number_text_process_status_dates_and_person(as_user, loaded_runtime, cast):
    rt = loaded_runtime
    a = raise_deviation(rt, cast["olivia"], title="Freezer alarm in warehouse")
    b = raise_deviation(rt, cast["iris"], title="Label misprint")
    triage(rt, b, cast["quinn"])
    old = raise_deviation(rt, cast["olivia"], title="Old event")
    with rt.db.unit_of_work(None) as s:
        s.execute(update(Record).where(Record.id == old.id).values(
            created_at=dt.datetime(2025, 1, 15, 12, tzinfo=dt.timezone.utc)))
    c = as_user("quinn")

    def numbers(url):
        return set(re.findall(r'href="/records/(DEV-\d{4}-\d{4})"', c.get(url).get_data(as_text=True)))

    assert numbers("/records") == {a.number, b.number, old.number}
    assert numbers(f"/records?number={a.number}") == {a.number}
    assert numbers("/records?q=freezer") == {a.number}
    assert numbers("/records?process=deviation&status=open") == {a.number, b.number, old.number}
    assert numbers("/records?status=closed") == set()
    assert numbers("/records?from=2025-01-01&to=2025-01-31") == {old.number}
    assert numbers(f"/records?from={dt.date.today().isoformat()}") == {a.number, b.number}
    assert numbers("/records?person=iris") == {b.number}           # raised it
    assert numbers("/records?person=Quinn") == {b.number}          # completed a step of it
    html = c.get("/records?q=label", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in html and "1 record" in html and "QA triage" not in html and "Investigation" in html


@pytest.mark.urs("URS-REP-02")
def test_records_list_is_paginated(as_user, loaded_runtime, cast):
    for i in range(27):
        raise_deviation(loaded_runtime, cast["olivia"], title=f"Event {i:02d}")
    c = as_user("quinn")
    first = c.get("/records").get_data(as_text=True)
    assert "27 records" in first and "Page 1 of 2" in first and 'rel="next"' in first
    second = c.get("/records?page=2").get_data(as_text=True)
    assert len(re.findall(r'href="/records/DEV-', second)) == 2
    person_page = c.get("/records?person=olivia&page=2").get_data(as_text=True)
    assert "27 records" in person_page and "Page 2 of 2" in person_page


@pytest.mark.urs("URS-SEC-02")
def test_records_list_shows_only_records_the_user_may_see(as_user, loaded_runtime, cast):
    raise_deviation(loaded_runtime, cast["olivia"], title="Visible to deviation roles")
    loaded_runtime.add_user(None, "tom", "Tom Trainer", "Correct-horse-9", ["Trainer"])
    html = as_user("tom").get("/records").get_data(as_text=True)
    assert "0 records" in html and "Visible to deviation roles" not in html


@pytest.mark.urs("URS-OPS-01")
def test_records_list_needs_the_same_number_of_queries_for_3_or_20_records(as_user, loaded_runtime, cast):
    rt = loaded_runtime
    c = as_user("quinn")

    def add(n):
        for i in range(n):
            record = raise_deviation(rt, cast["olivia"], title=f"R{i}")
            if i % 3 == 0:
                triage(rt, record, cast["quinn"])

    add(3)
    c.get("/records")
    with count_queries(rt.db) as few:
        c.get("/records")
    add(17)
    c.get("/records")
    with count_queries(rt.db) as many:
        assert "20 records" in c.get("/records").get_data(as_text=True)
    assert len(many) == len(few) and len(few) >= 3, "\n".join(many)
