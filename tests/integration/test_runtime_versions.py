"""Diagram versions: a running record stays on the version it started with; a new version applies to
new records (URS-PLT-06); loading unchanged files creates nothing (URS-VAL-01)."""
from __future__ import annotations

import shutil

import pytest
from sqlalchemy import func, select

from engine.runtime import Runtime
from engine.settings import Settings
from models import AuditEntry, ProcessVersion, Record, RecordStatus, TaskStatus, VersionStatus
from tests.fixtures import bpmn_builder as bb
from tests.fixtures.cast import add_users

V1 = bb.PROCESSES_DIR / "two_step.bpmn"
V2 = bb.PROCESSES_DIR / "v2" / "two_step.bpmn"
PEOPLE = {"rita": ("Rita Requester", ["Requester"]), "rob": ("Rob Reviewer", ["Reviewer"])}


@pytest.fixture
def processes(tmp_path):
    folder = tmp_path / "processes"
    folder.mkdir()
    shutil.copy(V1, folder / "two_step.bpmn")
    return folder


@pytest.fixture
def rt(db_url, processes):
    runtime = Runtime(Settings(database_url=db_url, processes_dir=processes, forms_dir=bb.FORMS_DIR))
    yield runtime
    runtime.db.dispose()


def versions(rt):
    with rt.db.sessionmaker() as s:
        rows = s.scalars(select(ProcessVersion).order_by(ProcessVersion.version))
        return [(v.version, v.status, v.sha256) for v in rows]


def open_bpmn_ids(rt, record_id):
    with rt.db.sessionmaker() as s:
        return sorted(t.bpmn_id for t in rt.record_tasks(s, s.get(Record, record_id)) if t.status == TaskStatus.OPEN)


def complete(rt, user, record_id, bpmn_id, data):
    with rt.db.sessionmaker() as s:
        (task,) = [t for t in rt.open_tasks(s, user) if t.record_id == record_id and t.bpmn_id == bpmn_id]
    return rt.complete_task(task.id, user, data)


@pytest.mark.urs("URS-VAL-01")
def test_loading_unchanged_files_creates_no_new_version(rt):
    (first,) = rt.load_processes()
    assert first.created and first.version == 1
    for _ in range(2):
        (again,) = rt.load_processes()
        assert (again.created, again.version, again.sha256) == (False, 1, first.sha256)
    assert versions(rt) == [(1, VersionStatus.RELEASED, first.sha256)]
    with rt.db.sessionmaker() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "diagram_loaded")) == 1


@pytest.mark.urs("URS-PLT-06")
def test_a_running_record_stays_on_its_diagram_version_after_a_new_version_is_loaded(rt, processes, db_url):
    rt.load_processes()
    people = add_users(rt, PEOPLE)
    old = rt.start_record(people["rita"], "two_step", {"title": "Started on version 1"})

    shutil.copy(V2, processes / "two_step.bpmn")
    (loaded,) = rt.load_processes()
    assert loaded.created and loaded.version == 2
    assert [(v, s) for v, s, _ in versions(rt)] == [(1, VersionStatus.RETIRED), (2, VersionStatus.RELEASED)]
    new = rt.start_record(people["rita"], "two_step", {"title": "Started on version 2"})

    with rt.db.sessionmaker() as s:
        assert s.get(Record, old.id).process_version.version == 1
        assert s.get(Record, new.id).process_version.version == 2

    # The old record follows version 1 (review, then closed) even in a freshly started runtime that
    # has never seen it: the spec comes from the version the record is pinned to.
    restarted = Runtime(Settings(database_url=db_url, processes_dir=processes, forms_dir=bb.FORMS_DIR))
    try:
        done = complete(restarted, people["rob"], old.id, "review", {"outcome": "accepted"})
        assert done.status == RecordStatus.CLOSED
        assert open_bpmn_ids(restarted, old.id) == []
    finally:
        restarted.db.dispose()

    # The new record follows version 2: the review leads to the sign-off that version 1 does not have.
    after = complete(rt, people["rob"], new.id, "review", {"outcome": "accepted"})
    assert after.status == RecordStatus.OPEN
    assert open_bpmn_ids(rt, new.id) == ["sign_off"]
    assert complete(rt, people["rob"], new.id, "sign_off", {"comment": "ok"}).status == RecordStatus.CLOSED

    # Loading the same files again changes nothing.
    (again,) = rt.load_processes()
    assert not again.created and len(versions(rt)) == 2


@pytest.mark.urs("URS-PLT-06")
def test_going_back_to_the_first_file_makes_a_third_version_not_a_reuse_of_the_first(rt, processes):
    (v1,) = rt.load_processes()
    shutil.copy(V2, processes / "two_step.bpmn")
    rt.load_processes()
    shutil.copy(V1, processes / "two_step.bpmn")
    (v3,) = rt.load_processes()
    assert v3.created and v3.version == 3 and v3.sha256 == v1.sha256
    assert [(v, s) for v, s, _ in versions(rt)] == [
        (1, VersionStatus.RETIRED), (2, VersionStatus.RETIRED), (3, VersionStatus.RELEASED)]
