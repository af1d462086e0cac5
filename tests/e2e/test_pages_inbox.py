"""Inbox: the open tasks a user may complete, with due marks, sorting, the count in the navigation,
and a constant number of queries however many tasks there are (no N+1)."""
from __future__ import annotations

import contextlib
import datetime as dt
import re

import pytest
from sqlalchemy import event

from tests.e2e.conftest import investigate, raise_deviation, triage


@contextlib.contextmanager
def count_queries(db):
    """Count the SQL statements the runtime's database sends (SQLAlchemy before_cursor_execute),
    on its writing engine and, where it has one, its reading engine."""
    statements: list[str] = []
    engines = {id(e): e for e in (db.engine, getattr(db, "read_engine", db.engine))}.values()

    def before(conn, cursor, statement, parameters, context, executemany):
        if not statement.strip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            statements.append(statement)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", before)


def rows_of(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr.*?</tr>", body, re.S)


@pytest.mark.urs("URS-PLT-02")
def test_inbox_lists_open_tasks_with_record_title_task_age_and_due(as_user, loaded_runtime, cast):
    rt = loaded_runtime
    record = raise_deviation(rt, cast["olivia"], title="Freezer alarm")
    html = as_user("quinn").get("/").get_data(as_text=True)
    assert record.number in html and "Freezer alarm" in html and "QA triage" in html
    assert "1 open task," in html
    assert re.search(r"<td>\d+ (min|h|d)</td>", html)  # age
    triage(rt, record, cast["quinn"])
    html = as_user("ivan").get("/").get_data(as_text=True)
    assert "Investigation" in html and "Due" in html
    assert re.search(r'<time datetime="\d{4}-\d{2}-\d{2}T', html)  # the due date, as a time element


@pytest.mark.urs("URS-PLT-02")
def test_inbox_shows_only_tasks_of_the_users_roles(as_user, loaded_runtime, cast):
    raise_deviation(loaded_runtime, cast["olivia"])
    html = as_user("ivan").get("/").get_data(as_text=True)
    assert "QA triage" not in html and "No open tasks for you" in html
    html = as_user("olivia").get("/").get_data(as_text=True)
    assert "QA triage" not in html


@pytest.mark.urs("URS-DEV-05")
def test_overdue_and_due_soon_tasks_are_marked(as_user, loaded_runtime, cast):
    rt = loaded_runtime
    late = raise_deviation(rt, cast["olivia"], title="Late one")
    soon = raise_deviation(rt, cast["olivia"], title="Soon one")
    later = raise_deviation(rt, cast["olivia"], title="Later one")
    rt.clock.offset = -dt.timedelta(days=31)   # minor: due 30 days after triage -> overdue now
    triage(rt, late, cast["quinn"])
    rt.clock.offset = -dt.timedelta(days=29)   # due tomorrow -> due soon
    triage(rt, soon, cast["quinn"])
    rt.clock.offset = dt.timedelta(0)
    triage(rt, later, cast["quinn"])
    html = as_user("ivan").get("/").get_data(as_text=True)
    rows = rows_of(html)
    assert len(rows) == 3
    by_title = {t: next(r for r in rows if t in r) for t in ("Late one", "Soon one", "Later one")}
    assert 'class="overdue"' in by_title["Late one"] and "Overdue" in by_title["Late one"]
    assert 'class="due-soon"' in by_title["Soon one"] and "Due soon" in by_title["Soon one"]
    assert "Overdue" not in by_title["Later one"] and "Due soon" not in by_title["Later one"]
    # Sorted by due date by default: the overdue task first.
    assert rows.index(by_title["Late one"]) == 0


@pytest.mark.urs("URS-PLT-02")
def test_inbox_is_sortable_and_htmx_gets_only_the_table(as_user, loaded_runtime, cast):
    rt = loaded_runtime
    for title in ("Bravo", "Alpha", "Charlie"):
        raise_deviation(rt, cast["olivia"], title=title)
    c = as_user("quinn")
    asc = rows_of(c.get("/?sort=title&dir=asc").get_data(as_text=True))
    assert [next(t for t in ("Alpha", "Bravo", "Charlie") if t in r) for r in asc] == ["Alpha", "Bravo", "Charlie"]
    resp = c.get("/?sort=title&dir=desc", headers={"HX-Request": "true"})
    html = resp.get_data(as_text=True)
    assert "<html" not in html and "<table" in html  # a partial for htmx
    assert [next(t for t in ("Alpha", "Bravo", "Charlie") if t in r) for r in rows_of(html)] == \
        ["Charlie", "Bravo", "Alpha"]
    assert 'aria-sort="descending"' in html
    by_number = rows_of(c.get("/?sort=number&dir=desc").get_data(as_text=True))
    numbers = [re.search(r"DEV-\d{4}-\d{4}", r).group(0) for r in by_number]
    assert numbers == sorted(numbers, reverse=True)
    assert c.get("/?sort=nonsense").status_code == 200


@pytest.mark.urs("URS-REP-04")
def test_the_navigation_shows_the_inbox_count_on_every_page(as_user, loaded_runtime, cast):
    for _ in range(3):
        raise_deviation(loaded_runtime, cast["olivia"])
    c = as_user("quinn")
    for url in ("/", "/records", "/start"):
        html = c.get(url).get_data(as_text=True)
        assert re.search(r'id="inbox-count"[^>]*>3</span>', html), url


@pytest.mark.urs("URS-OPS-01")
def test_inbox_needs_the_same_number_of_queries_for_2_or_12_tasks(as_user, loaded_runtime, cast):
    """No N+1: the inbox reads tasks, records, processes and people in a fixed number of queries."""
    rt = loaded_runtime
    c = as_user("quentin")

    def add(n):
        for i in range(n):
            record = raise_deviation(rt, cast["olivia"], title=f"Record {i}")
            if i % 2:  # half of them waiting for QA approval (segregation checks), half for triage
                triage(rt, record, cast["quinn"])
                investigate(rt, record, cast["ivan"])

    add(2)
    c.get("/")
    with count_queries(rt.db) as few:
        assert c.get("/").status_code == 200
    add(10)
    c.get("/")
    with count_queries(rt.db) as many:
        html = c.get("/").get_data(as_text=True)
    assert "12 open tasks" in html
    assert len(many) == len(few), "\n".join(many)
    assert len(many) >= 3  # the counter does see the queries
    assert len(many) <= 12
