"""Server time of every web page on demo data (issue 4: each page under 100 ms).

Builds a fresh database (SQLite by default, or --db postgresql://...), loads the demo users
and records of `cellqms demo`, adds --records more deviations spread over every stage
(raised, triaged, investigated, signed and closed), then times each page with the Flask
test client: the time from request to complete response inside the process, which is the
server time without the network. Prints median, 95th percentile and the budget verdict.

    python -m benchmarks.pages                 # SQLite, 150 extra deviations
    python -m benchmarks.pages --db postgresql://postgres@127.0.0.1:5432/bench --records 500

Log-in (POST) is timed apart: it is dominated on purpose by the argon2 password hash.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from cellqms.demo import DEMO_PASSWORD, run_demo
from engine.runtime import Runtime
from engine.settings import Settings
from models import Record, Task, TaskStatus
from models.migrate import upgrade
from webapp import create_app

BUDGET_MS = 100.0


def _deviation(i: int) -> dict:
    return {"title": f"Benchmark deviation {i:04d}: incubator excursion", "area": "Cell processing",
            "description": f"Event {i}: incubator read 38.9 C for 40 minutes during expansion.",
            "occurred_at": "2026-11-20T08:30:00+00:00", "batch_ref": f"COI-2026-{i:04d}",
            "immediate_actions": "Batch moved; engineering informed."}


def _open(rt: Runtime, record_id: str, bpmn_id: str) -> str:
    with rt.db.sessionmaker() as s:
        return s.scalar(select(Task.id).where(Task.record_id == record_id, Task.bpmn_id == bpmn_id,
                                              Task.status == TaskStatus.OPEN))


def build_data(rt: Runtime, extra: int) -> dict:
    """Demo data plus `extra` deviations: a quarter each raised, triaged, investigated, closed."""
    run_demo(rt, None, echo=lambda _m: None)
    user = {u: rt.user_by_username(u) for u in ("operator", "qa", "qa2", "investigator")}
    numbers = {}
    for i in range(extra):
        record = rt.start_record(user["operator"], "deviation", _deviation(i))
        stage = i % 4
        if stage >= 1:
            rt.complete_task(_open(rt, record.id, "triage_deviation"), user["qa"], {
                "classification": "minor", "investigator": "investigator", "rationale": "No product impact."})
        if stage >= 2:
            rt.complete_task(_open(rt, record.id, "investigate_deviation"), user["investigator"], {
                "root_cause": "Door seal worn", "product_impact": "None", "patient_impact": "None",
                "capa_required": False, "capa_rationale": "Isolated event."})
        if stage >= 3:
            rt.complete_task(_open(rt, record.id, "approve_investigation"), user["qa2"],
                             {"decision": "approve", "comment": "Justified."},
                             signature={"password": DEMO_PASSWORD, "meaning": "approved"})
        numbers.setdefault(stage, record.number)
        if (i + 1) % 50 == 0:
            print(f"  {i + 1} deviations created", file=sys.stderr)
    return numbers


def _client(app, username: str):
    c = app.test_client()
    resp = c.post("/login", data={"username": username, "password": DEMO_PASSWORD})
    assert resp.status_code == 302, resp.status_code
    return c


def time_page(client, method: str, url: str, repeat: int, **kwargs) -> tuple[list[float], int]:
    """Milliseconds per request (after one warm-up request) and the last status code."""
    call = client.get if method == "GET" else client.post
    status = call(url, **kwargs).status_code
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        resp = call(url, **kwargs)
        resp.get_data()
        times.append((time.perf_counter() - start) * 1000)
        status = resp.status_code
    return times, status


def _database(url: str | None) -> tuple[str, callable]:
    if url and url.startswith("postgresql"):
        name = f"cellqms_bench_{uuid.uuid4().hex[:8]}"
        admin_url = make_url(url).set(drivername="postgresql+psycopg", database="postgres")
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        db_url = make_url(url).set(database=name).render_as_string(hide_password=False)

        def drop():
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

        return db_url, drop
    folder = Path(tempfile.mkdtemp(prefix="cellqms-bench-"))
    return f"sqlite:///{folder / 'bench.sqlite'}", lambda: None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="postgresql://... (default: a temporary SQLite file)")
    parser.add_argument("--records", type=int, default=150, help="extra deviations besides the demo ones")
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per page")
    args = parser.parse_args(argv)

    db_url, drop = _database(args.db)
    rt = None
    try:
        upgrade(db_url)
        rt = Runtime(Settings(database_url=db_url))
        print(f"building data on {make_url(db_url).get_backend_name()}: demo + {args.records} deviations ...",
              file=sys.stderr)
        t0 = time.perf_counter()
        numbers = build_data(rt, args.records)
        print(f"  built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "SESSION_COOKIE_SECURE": False,
                          "SECRET_KEY": "bench"}, runtime=rt)
        qa, qa2, admin = _client(app, "qa"), _client(app, "qa2"), _client(app, "admin")
        with rt.db.sessionmaker() as s:
            total = s.scalar(select(text("count(*)")).select_from(Record))
        closed, raised = numbers.get(3), numbers.get(0)
        triage_task = _open(rt, _record_id(rt, raised), "triage_deviation")
        approval_record = numbers.get(2)
        approval_task = _open(rt, _record_id(rt, approval_record), "approve_investigation")
        investigation = _completed(rt, _record_id(rt, closed), "investigate_deviation")
        pages = [
            ("log-in page", app.test_client(), "GET", "/login", {}),
            ("inbox (QA)", qa, "GET", "/", {}),
            ("inbox sorted, htmx partial", qa, "GET", "/?sort=title&dir=desc", {"headers": {"HX-Request": "true"}}),
            ("start: process list", _client(app, "operator"), "GET", "/start", {}),
            ("start: deviation form", _client(app, "operator"), "GET", "/start/deviation", {}),
            ("records list", qa, "GET", "/records", {}),
            ("records search: text", qa, "GET", "/records?q=incubator&status=open", {}),
            ("records search: person + dates", qa, "GET", "/records?person=ivan&from=2020-01-01", {}),
            ("record page (closed, signed)", qa, "GET", f"/records/{closed}", {}),
            ("record page (open)", qa, "GET", f"/records/{raised}", {}),
            ("audit trail filter, htmx", qa, "GET", f"/records/{closed}/audit?action=update",
             {"headers": {"HX-Request": "true"}}),
            ("audit trail CSV", qa, "GET", f"/records/{closed}/audit.csv", {}),
            ("diagram XML", qa, "GET", f"/records/{closed}/diagram.xml", {}),
            ("task page: triage form", qa, "GET", f"/tasks/{triage_task}", {}),
            ("task page: signing step", qa2, "POST", f"/tasks/{approval_task}",
             {"data": {"_action": "review", "decision": "approve", "comment": "ok"}}),
            ("task form errors (400)", qa, "POST", f"/tasks/{triage_task}",
             {"data": {"classification": "minor", "investigator": "", "rationale": ""}}),
            ("correction form", qa, "GET", f"/records/{closed}/correct/{investigation}", {}),
            ("admin: users", admin, "GET", "/admin/users", {}),
            ("admin: process versions", admin, "GET", "/admin/processes", {}),
            ("404 page", qa, "GET", "/no/such/page", {}),
        ]
        print(f"\nServer time per page, {total} records in the database, {args.repeat} requests each "
              f"(Flask test client, {make_url(db_url).get_backend_name()}):\n")
        print(f"{'page':36} {'status':>6} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}  budget")
        over = 0
        for name, client, method, url, kwargs in pages:
            times, status = time_page(client, method, url, args.repeat, **kwargs)
            med = statistics.median(times)
            p95 = sorted(times)[max(0, -(-95 * len(times) // 100) - 1)]
            ok = p95 < BUDGET_MS
            over += not ok
            print(f"{name:36} {status:>6} {med:>10.1f} {p95:>8.1f} {max(times):>8.1f}  "
                  f"{'ok' if ok else 'OVER ' + str(int(BUDGET_MS)) + ' ms'}")
        login = []
        for _ in range(3):
            c = app.test_client()
            start = time.perf_counter()
            c.post("/login", data={"username": "qa", "password": DEMO_PASSWORD})
            login.append((time.perf_counter() - start) * 1000)
        print(f"{'log-in POST (argon2 by design)':36} {302:>6} {statistics.median(login):>10.1f}")
        print(f"\n{len(pages) - over} of {len(pages)} pages within {int(BUDGET_MS)} ms at the 95th percentile.")
        return 1 if over else 0
    finally:
        if rt is not None:
            rt.db.dispose()
        drop()


def _record_id(rt: Runtime, number: str) -> str:
    with rt.db.sessionmaker() as s:
        return s.scalar(select(Record.id).where(Record.number == number))


def _completed(rt: Runtime, record_id: str, bpmn_id: str) -> str:
    with rt.db.sessionmaker() as s:
        return s.scalar(select(Task.id).where(Task.record_id == record_id, Task.bpmn_id == bpmn_id,
                                              Task.status == TaskStatus.COMPLETED))


if __name__ == "__main__":
    sys.exit(main())
