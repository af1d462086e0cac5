"""Browser end-to-end: Debian's chromium drives the real app on a live server (Playwright, sync API).

A new user logs in, raises a deviation, QA triages, the investigator investigates and another QA
approves with a signature; the record page shows the signature manifestation, the audit trail and
the diagram with the tasks highlighted. A user without the role cannot see the task, and a wrong
signing password is refused with nothing changed. Screenshots of the main pages go to
test-output/screenshots/.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select, update

from models import Record, Signature, Task, TaskStatus, User
from tests.conftest import PASSWORD
from tests.e2e.conftest import (
    SCREENSHOTS,
    investigate,
    log_in,
    log_out,
    no_console_errors,
    open_task,
    raise_deviation,
    refusal_of,
    screenshot,
    triage,
)

pytestmark = pytest.mark.browser

NINA_FIRST = "Welcome-2026-nina"
NINA = "Nina-own-Password-1"


@pytest.mark.urs("URS-DEV-01")
@pytest.mark.urs("URS-DEV-02")
@pytest.mark.urs("URS-DEV-03")
@pytest.mark.urs("URS-SIG-01")
@pytest.mark.urs("URS-SIG-02")
@pytest.mark.urs("URS-AUD-03")
@pytest.mark.urs("URS-PLT-03")
def test_deviation_from_raising_to_signed_approval_in_the_browser(live_server, browser_context, loaded_runtime,
                                                                   admin):
    rt = loaded_runtime
    base = live_server.url
    with rt.db.unit_of_work(None) as s:
        s.execute(update(User).where(User.username == "quentin").values(timezone="Europe/Berlin"))
    page = browser_context.new_page()

    # An administrator creates a new user, who must choose a password at the first log-in.
    log_in(page, base, "ada")
    page.goto(base + "/admin/users/new")
    page.fill("#username", "nina")
    page.fill("#full_name", "Nina Newcomer")
    page.fill("#password", NINA_FIRST)
    page.check("input[name=roles][value=Initiator]")
    page.click("text=Create user")
    page.wait_for_url(base + "/admin/users/nina")
    screenshot(page, "admin-user")
    page.goto(base + "/admin/users")
    screenshot(page, "admin-users")
    page.goto(base + "/admin/processes")
    screenshot(page, "admin-processes")
    log_out(page)

    log_in(page, base, "nina", NINA_FIRST)
    assert page.url == base + "/password"
    page.fill("#current_password", NINA_FIRST)
    page.fill("#new_password", NINA)
    page.fill("#confirm_password", NINA)
    page.click("text=Change password")
    page.wait_for_url(base + "/")
    assert "Your password was changed." in page.content()

    # Nina raises a deviation; a missing field is shown next to it and what she typed stays.
    page.click("text=Start a record")
    page.click("a[href='/start/deviation']")
    page.fill("#f-title", "Incubator INC-04 above 38 °C")
    page.select_option("#f-area", "Cell processing")
    page.fill("#f-occurred_at", "2026-11-20T08:30")
    page.fill("#f-batch_ref", "COI-2026-0042")
    page.fill("#f-immediate_actions", "Batch moved to INC-05; engineering informed.")
    page.click("text=Raise deviation")
    page.wait_for_load_state("domcontentloaded")
    assert page.locator("#error-summary").is_visible()
    assert "This field is required." in page.locator(".field.has-error").first.inner_text()
    assert page.input_value("#f-title") == "Incubator INC-04 above 38 °C"
    assert page.evaluate("document.activeElement.id") == "error-summary"  # focus moved to the errors
    screenshot(page, "start-form-errors")
    page.fill("#f-description", "INC-04 read 38.9 °C for 40 minutes during expansion (SOP-CP-012 allows 37 ± 1 °C).")
    page.click("text=Raise deviation")
    page.wait_for_url(re.compile(r".*/records/DEV-\d{4}-\d{4}$"))
    number = page.url.rsplit("/", 1)[1]
    assert f"{number} was raised" in page.content()
    log_out(page)

    # QA triages from the inbox.
    log_in(page, base, "quinn")
    assert page.locator("#inbox-count").inner_text() == "1"
    screenshot(page, "inbox")
    page.click("text=QA triage")
    page.select_option("#f-classification", "major")
    page.fill("#f-rationale", "Temperature excursion during expansion could affect potency.")
    page.fill("#f-investigator", "ivan")
    screenshot(page, "task-form")
    page.click("text=Complete task")
    page.wait_for_url(base + f"/records/{number}")
    log_out(page)

    # The investigator investigates.
    log_in(page, base, "ivan")
    page.click("text=Investigation")
    page.fill("#f-root_cause", "Door seal of INC-04 worn; found by inspection and 5 whys.")
    page.fill("#f-product_impact", "Viability 94 %, potency assay within limits.")
    page.fill("#f-patient_impact", "None; infusion not delayed.")
    page.fill("#f-capa_rationale", "Seal replaced; isolated event.")
    page.click("text=Complete task")
    page.wait_for_url(base + f"/records/{number}")
    log_out(page)

    # Another QA approves with a signature: first a wrong password, which changes nothing.
    log_in(page, base, "quentin")
    page.click("text=QA approval")
    page.select_option("#f-decision", "approve")
    page.fill("#f-comment", "Root cause justified; impact assessed.")
    page.click("text=Continue to signature")
    page.wait_for_selector("#signature_password")
    assert "You are about to sign" in page.content() and "APPROVED" in page.inner_text(".signing").upper()
    screenshot(page, "signing-step")
    with rt.db.sessionmaker() as s:
        version_before = s.scalar(select(Record.version).where(Record.number == number))
    page.fill("#signature_password", "wrong-password")
    page.click("button[value=sign]")
    page.wait_for_selector("#sign-error")
    assert "nothing was signed or saved" in page.inner_text("#sign-error")
    screenshot(page, "signing-wrong-password")
    with rt.db.sessionmaker() as s:
        assert s.scalar(select(Record.version).where(Record.number == number)) == version_before
        assert s.scalar(select(func.count()).select_from(Signature)) == 0
    page.fill("#signature_password", PASSWORD)
    page.click("button[value=sign]")
    page.wait_for_selector(".signature")
    manifest = page.inner_text(".signature")
    assert "Quentin QA" in manifest and "APPROVED" in manifest.upper() and "Valid" in manifest
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} CET", manifest)  # the signer's own zone
    screenshot(page, "signed-result")

    # The record page: signature manifestation, audit trail, and the diagram with marked tasks.
    page.goto(base + f"/records/{number}")
    page.wait_for_selector("#diagram[data-rendered=true]")
    assert "Closed" in page.inner_text(".record-head")
    assert "Quentin QA" in page.inner_text("#signatures") and "Valid" in page.inner_text("#signatures")
    audit = page.inner_text("#audit-table")
    assert "task_completed" in audit and "signature" in audit.lower()
    for task_id in ("triage_deviation", "investigate_deviation", "approve_investigation", "start"):
        classes = page.get_attribute(f"#diagram g.djs-element[data-element-id={task_id}]", "class")
        assert "cq-completed" in classes, (task_id, classes)
    assert page.locator("#diagram svg").count() >= 1
    screenshot(page, "record-page")
    page.locator("#diagram").screenshot(path=str(SCREENSHOTS / "record-diagram.png"))

    # The audit filter updates the table in place (htmx).
    page.select_option("#a-action", "task_completed")
    expect(page.locator("#audit-table tbody tr")).to_have_count(3)  # (no wait_for_function: CSP forbids eval)
    page.goto(base + "/records?q=incubator")
    screenshot(page, "records-search")
    no_console_errors(browser_context)


@pytest.mark.urs("URS-PLT-02")
@pytest.mark.urs("URS-SEC-02")
def test_a_user_without_the_role_cannot_see_the_task(live_server, browser_context, loaded_runtime, cast):
    rt = loaded_runtime
    record = raise_deviation(rt, cast["olivia"], title="Label misprint")
    task = open_task(rt, record, "triage_deviation")
    page = browser_context.new_page()
    log_in(page, live_server.url, "ivan")
    assert page.locator("#inbox-count").inner_text() == "0"
    assert "QA triage" not in page.inner_text("main")
    assert "for the role 'QA'" in refusal_of(page, live_server.url, task.id, "not_in_role")
    screenshot(page, "task-refused")
    # The open task is marked on the diagram.
    page.goto(live_server.url + f"/records/{record.number}")
    page.wait_for_selector("#diagram[data-rendered=true]")
    classes = page.get_attribute("#diagram g.djs-element[data-element-id=triage_deviation]", "class")
    assert "cq-open" in classes
    screenshot(page, "record-open")
    no_console_errors(browser_context)


@pytest.mark.urs("URS-SIG-01")
def test_a_wrong_signing_password_is_refused_and_nothing_changes(live_server, browser_context, loaded_runtime,
                                                                  cast):
    rt = loaded_runtime
    record = raise_deviation(rt, cast["olivia"])
    triage(rt, record, cast["quinn"])
    investigate(rt, record, cast["ivan"])
    task = open_task(rt, record, "approve_investigation")
    page = browser_context.new_page()
    log_in(page, live_server.url, "quentin")
    page.goto(live_server.url + f"/tasks/{task.id}")
    page.select_option("#f-decision", "reject")
    page.fill("#f-comment", "Impact on other batches not assessed.")
    page.click("text=Continue to signature")
    page.fill("#signature_password", "not-the-password")
    page.click("button[value=sign]")
    page.wait_for_selector("#sign-error")
    assert "The password is not correct; nothing was signed or saved." in page.inner_text("#sign-error")
    with rt.db.sessionmaker() as s:
        assert s.get(Task, task.id).status == TaskStatus.OPEN
        assert s.scalar(select(func.count()).select_from(Signature)) == 0
        assert "decision" not in s.get(Record, record.id).data
    page.goto(live_server.url + "/")
    assert "QA approval" in page.inner_text("main")  # still waiting in the inbox
    no_console_errors(browser_context)
