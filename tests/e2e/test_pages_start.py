"""Starting a record from the web: the released processes a user may start, and the start form."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select, update

from models import Record, User


@pytest.mark.urs("URS-DEV-01")
def test_start_page_lists_the_processes_the_user_may_start(as_user):
    html = as_user("olivia").get("/start").get_data(as_text=True)
    assert 'href="/start/deviation"' in html and "Deviation" in html
    html = as_user("ivan").get("/start").get_data(as_text=True)  # Investigator: may not raise a deviation
    assert 'href="/start/deviation"' not in html


@pytest.mark.urs("URS-SEC-02")
def test_starting_without_the_role_is_refused_with_the_reason(as_user):
    resp = as_user("ivan").get("/start/deviation")
    assert resp.status_code == 403
    assert "needs the role &#39;Initiator&#39;" in resp.get_data(as_text=True)
    assert as_user("olivia").get("/start/nonexistent").status_code == 404


@pytest.mark.urs("URS-PLT-03")
def test_the_start_form_is_rendered_from_its_json_schema(as_user):
    html = as_user("olivia").get("/start/deviation").get_data(as_text=True)
    assert "<h1>Raise a deviation</h1>" in html
    # Every field has a label tied to its control, in the ui:order of the form.
    for name in ("title", "area", "occurred_at", "batch_ref", "description", "immediate_actions"):
        assert f'<label for="f-{name}">' in html and f'id="f-{name}"' in html, name
    order = [html.index(f'id="f-{n}"') for n in ("title", "area", "occurred_at", "batch_ref", "description")]
    assert order == sorted(order)
    assert '<select id="f-area" name="area"' in html and '<option value="Cryopreservation">' in html
    assert '<input type="datetime-local" id="f-occurred_at"' in html and "stored in UTC" in html
    assert '<textarea id="f-description"' in html and 'maxlength="10000"' in html
    assert 'maxlength="200"' in html  # the title's maxLength


@pytest.mark.urs("URS-PLT-03")
def test_start_form_errors_show_next_to_their_fields_and_keep_what_was_typed(as_user, loaded_runtime):
    c = as_user("olivia")
    resp = c.post("/start/deviation", data={"title": "Pump <b>stopped</b>", "area": "Apheresis",
                                            "occurred_at": "", "batch_ref": "COI-1", "description": "",
                                            "immediate_actions": "None"})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    # The error sits in the field's own block, right before its control, and is announced.
    block = re.search(r'<div class="field has-error"><label for="f-description">.*?</div>', html, re.S).group(0)
    assert "This field is required." in block and 'aria-invalid="true"' in block
    assert 'aria-describedby="f-description-hint f-description-error"' in block
    assert re.search(r'<div class="field has-error"><label for="f-occurred_at">', html)
    # What the user typed is still there (escaped), and the enum choice is kept.
    assert 'value="Pump &lt;b&gt;stopped&lt;/b&gt;"' in html
    assert '<option value="Apheresis" selected>' in html
    assert 'id="error-summary"' in html and 'href="#f-description"' in html
    with loaded_runtime.db.sessionmaker() as s:
        assert s.scalar(select(Record.id)) is None  # nothing was started


@pytest.mark.urs("URS-DEV-01")
@pytest.mark.urs("URS-OPS-03")
def test_a_record_is_raised_and_local_time_is_stored_in_utc(as_user, loaded_runtime):
    with loaded_runtime.db.unit_of_work(None) as s:
        s.execute(update(User).where(User.username == "olivia").values(timezone="Europe/Berlin"))
    c = as_user("olivia")
    resp = c.post("/start/deviation", data={
        "title": "Incubator excursion", "area": "Cell processing", "occurred_at": "2026-11-20T09:30",
        "batch_ref": "COI-2026-0042", "description": "38.9 C for 40 min", "immediate_actions": "Moved"})
    assert resp.status_code == 302
    number = resp.headers["Location"].rsplit("/", 1)[1]
    with loaded_runtime.db.sessionmaker() as s:
        record = s.scalar(select(Record).where(Record.number == number))
        assert record.data["occurred_at"] == "2026-11-20T08:30:00+00:00"  # 09:30 CET is 08:30 UTC
    page = c.get(resp.headers["Location"]).get_data(as_text=True)
    assert f"{number} was raised" in page
    assert "2026-11-20 09:30 CET" in page  # shown back in the user's zone


@pytest.mark.urs("URS-TRN-02")
@pytest.mark.urs("URS-SEC-02")
def test_a_process_the_system_starts_is_not_offered_and_cannot_be_started_by_hand(as_user, loaded_runtime):
    """training_acknowledgement sets manualStart=false: neither the page nor a hand-made POST starts it."""
    client = as_user("max")  # holds Employee, the lane of the acknowledgement's start event
    html = client.get("/start").get_data(as_text=True)
    assert 'href="/start/deviation"' in html and 'href="/start/training_acknowledgement"' not in html
    resp = client.get("/start/training_acknowledgement")
    assert resp.status_code == 403 and "is started by the system, not by hand" in resp.get_data(as_text=True)
    resp = client.post("/start/training_acknowledgement", data={"title": "Self-made", "trainee": "max"})
    assert resp.status_code == 403
    with loaded_runtime.db.sessionmaker() as session:
        assert session.scalars(select(Record)).all() == []
