"""JSON Schemas (2020-12) of the request bodies: the routes validate with them and the OpenAPI
document publishes the same objects, so the description cannot say one thing while the
server checks another."""
from __future__ import annotations

REQUEST_SCHEMAS: dict[str, dict] = {
    "TokenRequest": {
        "type": "object",
        "properties": {
            "username": {"type": "string", "minLength": 1, "maxLength": 64},
            "password": {"type": "string", "minLength": 1, "maxLength": 1024},
        },
        "required": ["username", "password"],
        "additionalProperties": False,
    },
    "StartRecordRequest": {
        "type": "object",
        "properties": {
            "process": {"type": "string", "minLength": 1, "maxLength": 100,
                        "description": "Process key, e.g. 'deviation'; its released version is started."},
            "data": {"type": "object",
                     "description": "The start form's data; validated against the start form's JSON Schema."},
            "title": {"type": "string", "maxLength": 300,
                      "description": "Used as the record title when the data has no 'title' field."},
        },
        "required": ["process"],
        "additionalProperties": False,
    },
    "CompleteTaskRequest": {
        "type": "object",
        "properties": {
            "data": {"type": "object",
                     "description": "The task form's data; validated against the task's form."},
            "signature": {
                "type": "object",
                "description": "Only where the task requires a signature (Part 11 §11.200: the password "
                               "is entered again at the moment of signing).",
                "properties": {
                    "password": {"type": "string", "minLength": 1, "maxLength": 1024},
                    "meaning": {"type": "string", "minLength": 1, "maxLength": 32,
                                "description": "Must equal the task's signature_meaning when given."},
                },
                "required": ["password"],
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
    },
    "BatchResultRequest": {
        "type": "object",
        "properties": {
            "test": {"type": "string", "minLength": 1},
            "value": {"type": "number"},
            "unit": {"type": "string"},
            "sample_id": {"type": "string"},
            "performed_at": {"type": "string", "format": "date-time"},
        },
        "required": ["test", "value", "unit", "sample_id", "performed_at"],
    },
    "CreateDocumentRequest": {
        "type": "object",
        "description": "A new controlled document (URS-DOC-01); the engine checks the values "
                       "(engine.documents.document_problems) and answers every problem at once.",
        "properties": {
            "number": {"type": "string",
                       "description": "2-64 capital letters, digits, '.', '-', '_', e.g. SOP-QA-001; never reused."},
            "title": {"type": "string", "description": "At most 300 characters."},
            "type": {"type": "string", "description": "At most 64 characters.",
                     "examples": ["SOP", "Specification", "Test method"]},
            "owner": {"type": "string", "description": "Username of an active user."},
            "review_interval_months": {"type": "integer", "default": 24,
                                       "description": "Periodic review interval, 1 to 120 months."},
        },
        "required": ["number", "title", "type", "owner"],
        "additionalProperties": False,
    },
    "ObsoleteDocumentRequest": {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "maxLength": 10000,
                       "description": "Why the document is withdrawn (mandatory; kept in the audit trail)."},
        },
        "required": ["reason"],
        "additionalProperties": False,
    },
}
