"""What a signature covers and how its hash is computed (Part 11 §11.50, §11.70).

The content binds the signer, the meaning, the moment, the record and the task to the
data that was signed, so a signature can neither be copied to another record nor
survive a later change of what it attests.
"""
from __future__ import annotations

import datetime as dt
import hashlib

from models import canonical_json


def signed_content(*, record_id: str, record_number: str, task_id: str | None, task_bpmn_id: str | None,
                   signer_id: int, signer_name: str, meaning: str, signed_at: dt.datetime,
                   record_data: dict, submitted: dict) -> dict:
    return {
        "record_id": record_id,
        "record_number": record_number,
        "task_id": task_id,
        "task": task_bpmn_id,
        "signer_id": signer_id,
        "signer_name": signer_name,
        "meaning": meaning,
        "signed_at": signed_at.astimezone(dt.timezone.utc).isoformat(timespec="microseconds"),
        "record_data": record_data,
        "submitted": submitted,
    }


def content_hash(content: dict) -> str:
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()
