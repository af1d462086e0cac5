"""What a signature covers: the manifest hash is stable for the same content and changes with any
field of it (URS-SIG-03), so a signature is bound to the exact record, task, signer and data."""
from __future__ import annotations

import datetime as dt

import pytest

from signatures.manifest import content_hash, signed_content

pytestmark = pytest.mark.urs("URS-SIG-03")

SIGNED_AT = dt.datetime(2026, 11, 20, 9, 15, 30, 123456, tzinfo=dt.timezone.utc)
BASE = dict(
    record_id="5f0c8a6e-0000-4000-8000-000000000001", record_number="DEV-2026-0001",
    task_id="5f0c8a6e-0000-4000-8000-0000000000aa", task_bpmn_id="approve_investigation",
    signer_id=7, signer_name="Quinn QA", meaning="approved", signed_at=SIGNED_AT,
    record_data={"title": "Incubator excursion", "root_cause": "door seal", "rows": [{"qty": 1}]},
    submitted={"decision": "approve", "comment": ""},
)

CHANGES = {
    "record_id": "5f0c8a6e-0000-4000-8000-000000000002",
    "record_number": "DEV-2026-0002",
    "task_id": "5f0c8a6e-0000-4000-8000-0000000000ab",
    "task_bpmn_id": "qa_head_critical_review",
    "signer_id": 8,
    "signer_name": "Quentin QA",
    "meaning": "reviewed",
    "signed_at": SIGNED_AT + dt.timedelta(microseconds=1),
    "record_data": {**BASE["record_data"], "root_cause": "door seal worn"},
    "submitted": {"decision": "reject", "comment": ""},
}


def digest(**changes):
    return content_hash(signed_content(**{**BASE, **changes}))


def test_the_same_content_always_gives_the_same_hash():
    first = digest()
    assert first == digest()
    assert len(first) == 64 and int(first, 16) >= 0


def test_the_hash_does_not_depend_on_key_order_or_on_the_time_zone_the_moment_is_given_in():
    reordered = dict(reversed(list(BASE["record_data"].items())))
    cet = SIGNED_AT.astimezone(dt.timezone(dt.timedelta(hours=1)))
    assert digest(record_data=reordered, signed_at=cet) == digest()


def test_every_field_of_the_manifest_is_covered():
    assert set(CHANGES) == set(BASE), "each field of signed_content must be varied by this test"


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_changing_any_single_field_changes_the_hash(field):
    assert digest(**{field: CHANGES[field]}) != digest()


@pytest.mark.parametrize("record_data", [
    {"title": "Incubator excursion", "root_cause": "door seal", "rows": [{"qty": 2}]},
    {"title": "Incubator excursion", "root_cause": "door seal", "rows": [{"qty": 1}], "extra": None},
    {"title": "Incubator excursion", "root_cause": "door seal"},
    {"title": "Incubator excursion", "root_cause": "door seal", "rows": [{"qty": 1.0000001}]},
    {"title": "Incubator excursion ", "root_cause": "door seal", "rows": [{"qty": 1}]},
])
def test_a_change_deep_inside_the_signed_data_changes_the_hash(record_data):
    assert digest(record_data=record_data) != digest()


def test_the_manifest_shows_who_what_and_when_in_utc():
    content = signed_content(**{**BASE, "signed_at": SIGNED_AT.astimezone(dt.timezone(dt.timedelta(hours=-5)))})
    assert content["signer_name"] == "Quinn QA"
    assert content["meaning"] == "approved"
    assert content["signed_at"] == "2026-11-20T09:15:30.123456+00:00"
