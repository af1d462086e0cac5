"""The OpenAPI 3.1 description of /api/v1, served at GET /api/v1/openapi.json (URS-INT-01).

Written by hand as a Python dict so it is reviewed with the code. Request bodies reuse the
schemas the routes validate with (schemas.REQUEST_SCHEMAS); a test walks the Flask URL map
and fails if a route is missing here or a documented path has no route.
"""
from __future__ import annotations

import copy

from .schemas import REQUEST_SCHEMAS

API_VERSION = "1.0.0"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _resp(name: str) -> dict:
    return {"$ref": f"#/components/responses/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _nullable(type_: str, **extra) -> dict:
    return {"type": [type_, "null"], **extra}


_TIMESTAMP = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC."}
_TIMESTAMP_OR_NULL = {"type": ["string", "null"], "format": "date-time", "description": "ISO 8601, UTC."}


def _path_param(name: str, description: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema or {"type": "string"}}


def _query_param(name: str, description: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


_DOC_VERSION_STATUSES = ["draft", "in_review", "approved", "effective", "superseded", "obsolete"]

_SCHEMAS: dict[str, dict] = {
    "Error": {
        "type": "object",
        "description": "Every error of the API has this shape.",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string", "description": "Machine code, e.g. not_in_role, "
                             "segregation_of_duties, not_qualified, not_assigned, wrong_password, conflict, "
                             "validation_failed, bad_json, not_authenticated, account_locked, not_found."},
                    "message": {"type": "string", "description": "A sentence for a person."},
                    "details": {
                        "type": "object",
                        "description": "Structured detail: `errors` ([{path, message}]) for validation failures, "
                                       "`missing` (trainings) for not_qualified, `locked_until` when locked.",
                        "properties": {
                            "errors": {"type": "array", "items": _ref("FieldError")},
                            "missing": {"type": "array", "items": {"type": "string"}},
                        },
                        "additionalProperties": True,
                    },
                },
                "required": ["code", "message", "details"],
            },
        },
        "required": ["error"],
    },
    "FieldError": {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "The form field (e.g. 'root_cause', 'rows[2].quantity') "
                     "or request member (e.g. 'signature.password'); empty for the whole body."},
            "message": {"type": "string"},
        },
        "required": ["path", "message"],
    },
    "Token": {
        "type": "object",
        "properties": {
            "token": {"type": "string"},
            "token_type": {"type": "string", "const": "Bearer"},
            "expires_at": _TIMESTAMP,
        },
        "required": ["token", "expires_at"],
    },
    "ProcessVersion": {
        "type": "object",
        "description": "A diagram version as a configuration item (URS-VAL-01).",
        "properties": {
            "key": {"type": "string"},
            "name": {"type": "string"},
            "version": {"type": "integer", "minimum": 1},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "status": {"type": "string", "enum": ["draft", "in_validation", "released", "retired"]},
            "loaded_at": _TIMESTAMP,
        },
        "required": ["key", "name", "version", "sha256", "status"],
    },
    "RecordSummary": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "number": {"type": "string", "examples": ["DEV-2026-0001"]},
            "title": {"type": "string"},
            "process": {"type": "string"},
            "process_version": {"type": "integer"},
            "status": {"type": "string", "enum": ["open", "closed", "cancelled", "error"]},
            "created_by": {"type": "string", "description": "Username."},
            "created_at": _TIMESTAMP,
            "updated_at": _TIMESTAMP,
            "closed_at": _TIMESTAMP_OR_NULL,
        },
        "required": ["id", "number", "process", "process_version", "status", "created_by", "created_at"],
    },
    "RecordList": {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": _ref("RecordSummary")},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": 200},
            "total": {"type": "integer", "minimum": 0},
        },
        "required": ["items", "page", "per_page", "total"],
    },
    "OpenTask": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "task": {"type": "string", "description": "The BPMN id of the user task."},
            "name": {"type": "string"},
            "role": _nullable("string"),
            "assignee": _nullable("string", description="Username the task is reserved for, if any."),
            "due_at": _TIMESTAMP_OR_NULL,
            "signature_required": {"type": "boolean"},
        },
        "required": ["id", "name", "role", "assignee", "due_at"],
    },
    "TaskHistoryEntry": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "task": {"type": "string"},
            "name": {"type": "string"},
            "role": _nullable("string"),
            "assignee": _nullable("string"),
            "status": {"type": "string", "enum": ["open", "completed", "cancelled"]},
            "created_at": _TIMESTAMP,
            "due_at": _TIMESTAMP_OR_NULL,
            "completed_by": _nullable("string"),
            "completed_at": _TIMESTAMP_OR_NULL,
        },
        "required": ["id", "task", "name", "status"],
    },
    "Signature": {
        "type": "object",
        "description": "Part 11 §11.50 manifestation: printed name, date and time, meaning.",
        "properties": {
            "signer": {"type": "string", "description": "Username."},
            "signer_name": {"type": "string", "description": "Printed name at the moment of signing."},
            "meaning": {"type": "string", "examples": ["approved"]},
            "signed_at": _TIMESTAMP,
            "task": _nullable("string", description="BPMN id of the signed task."),
            "task_id": _nullable("string"),
            "content_sha256": {"type": "string"},
            "valid": {"type": "boolean", "description": "False when the signed content changed since (URS-SIG-03)."},
        },
        "required": ["signer", "signer_name", "meaning", "signed_at", "task", "valid"],
    },
    "Link": {
        "type": "object",
        "properties": {
            "kind": {"type": "string"},
            "direction": {"type": "string", "enum": ["outgoing", "incoming"]},
            "record": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "number": {"type": "string"},
                               "process": {"type": "string"}},
                "required": ["id", "number"],
            },
            "created_at": _TIMESTAMP,
        },
        "required": ["kind", "direction", "record"],
    },
    "Record": {
        "allOf": [
            _ref("RecordSummary"),
            {
                "type": "object",
                "properties": {
                    "revision": {"type": "integer", "description": "Optimistic lock counter; changes on every write."},
                    "data": {"type": "object"},
                    "open_tasks": {"type": "array", "items": _ref("OpenTask")},
                    "signatures": {"type": "array", "items": _ref("Signature")},
                    "links": {"type": "array", "items": _ref("Link")},
                    "tasks": {"type": "array", "items": _ref("TaskHistoryEntry")},
                },
                "required": ["data", "open_tasks", "signatures", "links", "tasks"],
            },
        ],
    },
    "RecordRef": {
        "type": "object",
        "properties": {"id": {"type": "string"}, "number": {"type": "string"}, "title": {"type": "string"}},
        "required": ["id", "number"],
    },
    "InboxTask": {
        "allOf": [
            _ref("OpenTask"),
            {"type": "object",
             "properties": {"record": _ref("RecordRef"), "created_at": _TIMESTAMP},
             "required": ["record"]},
        ],
    },
    "TaskDetail": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "task": {"type": "string"},
            "name": {"type": "string"},
            "status": {"type": "string", "enum": ["open", "completed", "cancelled"]},
            "role": _nullable("string"),
            "assignee": _nullable("string"),
            "due_at": _TIMESTAMP_OR_NULL,
            "created_at": _TIMESTAMP,
            "instructions": {"type": "string"},
            "record": _ref("RecordRef"),
            "form": {
                "type": "object",
                "properties": {"schema": {"type": "object", "description": "JSON Schema 2020-12 of the form."},
                               "ui_schema": {"type": "object"}},
                "required": ["schema", "ui_schema"],
            },
            "signature_required": {"type": "boolean"},
            "signature_meaning": _nullable("string"),
            "can_complete": {"type": "boolean", "description": "Whether the caller may complete it now."},
            "why_not": {
                "type": ["object", "null"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "required": ["id", "name", "record", "form", "signature_required", "signature_meaning"],
    },
    "AuditEntry": {
        "type": "object",
        "properties": {
            "seq": {"type": "integer"},
            "at": _TIMESTAMP,
            "user": _nullable("string", description="Username, or 'system'."),
            "action": {"type": "string"},
            "entity": _nullable("string"),
            "entity_id": _nullable("string"),
            "record_id": _nullable("string"),
            "field": _nullable("string"),
            "old": {"description": "Any JSON value."},
            "new": {"description": "Any JSON value."},
            "reason": _nullable("string"),
        },
        "required": ["seq", "at", "user", "action", "field", "old", "new", "reason"],
    },
    "AuditPage": {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": _ref("AuditEntry")},
            "since_seq": {"type": "integer"},
            "limit": {"type": "integer"},
            "next_since_seq": {"type": "integer", "description": "Pass as since_seq to read on."},
            "more": {"type": "boolean", "description": "True when the page is full (more entries may follow)."},
        },
        "required": ["items", "next_since_seq"],
    },
    "AuditVerification": {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "entries": {"type": "integer"},
            "head": {"type": "string", "description": "Hash of the last entry (when ok)."},
            "first_bad_seq": {"type": "integer", "description": "First broken entry (when not ok)."},
            "problem": {"type": "string"},
        },
        "required": ["ok", "entries"],
    },
    "DocumentVersionRef": {
        "type": "object",
        "properties": {
            "label": {"type": "string", "examples": ["2.0"]},
            "status": {"type": "string", "enum": _DOC_VERSION_STATUSES},
        },
        "required": ["label", "status"],
    },
    "DocumentSummary": {
        "type": "object",
        "description": "A controlled document as the caller may see it (URS-DOC-01, URS-DOC-03).",
        "properties": {
            "number": {"type": "string", "examples": ["SOP-QA-001"]},
            "title": {"type": "string"},
            "type": {"type": "string", "examples": ["SOP"]},
            "owner": {"type": "string", "description": "Username."},
            "owner_name": {"type": "string"},
            "status": {"type": "string", "enum": ["active", "obsolete"]},
            "obsolete_reason": _nullable("string"),
            "review_interval_months": {"type": "integer", "minimum": 1, "maximum": 120},
            "current_version": _nullable("string", description="Label of the effective version, if any."),
            "effective_date": _TIMESTAMP_OR_NULL,
            "next_review_due": _TIMESTAMP_OR_NULL,
            "created_at": _TIMESTAMP,
        },
        "required": ["number", "title", "type", "owner", "status", "review_interval_months", "current_version",
                     "next_review_due"],
    },
    "DocumentListItem": {
        "allOf": [
            _ref("DocumentSummary"),
            {"type": "object",
             "properties": {"versions": {"type": "array", "items": _ref("DocumentVersionRef"),
                                         "description": "The versions the caller may see, oldest first."}},
             "required": ["versions"]},
        ],
    },
    "DocumentList": {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": _ref("DocumentListItem")},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": 200},
            "total": {"type": "integer", "minimum": 0},
        },
        "required": ["items", "page", "per_page", "total"],
    },
    "DocumentRecordRef": {
        "type": ["object", "null"],
        "properties": {"id": {"type": "string"}, "number": {"type": "string"}, "status": {"type": "string"}},
        "required": ["id", "number", "status"],
    },
    "DocumentVersion": {
        "type": "object",
        "description": "One version with its file's SHA-256 taken at upload (checked again at every download).",
        "properties": {
            "id": {"type": "integer", "description": "The version's id: `version_id` in the start data of a "
                                                  "document_approval record."},
            "document": {"type": "string", "description": "The document number."},
            "label": {"type": "string", "examples": ["2.0"]},
            "major": {"type": "integer"},
            "minor": {"type": "integer"},
            "status": {"type": "string", "enum": _DOC_VERSION_STATUSES},
            "filename": {"type": "string"},
            "content_type": {"type": "string"},
            "size": {"type": "integer", "minimum": 1},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "change_summary": {"type": "string"},
            "effective_date": _TIMESTAMP_OR_NULL,
            "effective_at": _TIMESTAMP_OR_NULL,
            "superseded_at": _TIMESTAMP_OR_NULL,
            "next_review_due": _TIMESTAMP_OR_NULL,
            "created_by": _nullable("string", description="Username of the uploader (null for a legacy import)."),
            "created_at": _TIMESTAMP,
            "approval_record": _ref("DocumentRecordRef"),
            "change_record": _ref("DocumentRecordRef"),
            "controlled_copy_url": {"type": "string"},
        },
        "required": ["id", "document", "label", "status", "filename", "size", "sha256", "effective_date",
                     "superseded_at"],
    },
    "Document": {
        "allOf": [
            _ref("DocumentSummary"),
            {"type": "object",
             "properties": {"versions": {"type": "array", "items": _ref("DocumentVersion"),
                                         "description": "The versions the caller may see, oldest first."}},
             "required": ["versions"]},
        ],
    },
}
_SCHEMAS.update(copy.deepcopy(REQUEST_SCHEMAS))

_RESPONSES = {
    "BadRequest": _json(_ref("Error"), "Malformed JSON (`bad_json`) or data that fails its JSON Schema "
                                       "(`validation_failed`, details.errors lists {path, message})."),
    "Unauthorized": _json(_ref("Error"), "Missing, expired or invalid token (`not_authenticated`)."),
    "Forbidden": _json(_ref("Error"), "Authenticated but not allowed (`not_in_role`, `segregation_of_duties`, "
                                      "`not_assigned`, `not_qualified` with details.missing)."),
    "NotFound": _json(_ref("Error"), "Unknown id, or one the caller may not see."),
    "Conflict": _json(_ref("Error"), "The task is no longer open, or the record changed since it was read "
                                     "(`conflict`)."),
    "TooLarge": _json(_ref("Error"), "The body is too large (`too_large`)."),
    "UnsupportedMediaType": _json(_ref("Error"), "Wrong Content-Type (`unsupported_media_type`)."),
    "Unprocessable": _json(_ref("Error"), "Well-formed, but the process refuses it (e.g. an invalid diagram; "
                                          "the message is the parser's reason)."),
    "NotImplemented": _json(_ref("Error"), "Not implemented yet (`not_implemented`)."),
    "InternalError": _json(_ref("Error"), "Unexpected server error (`internal_error`); nothing was changed."),
}

_COMMON = {"401": _resp("Unauthorized"), "500": _resp("InternalError")}


def _op(op_id: str, summary: str, responses: dict, *, tags: list[str], description: str | None = None,
        parameters: list | None = None, body: dict | None = None, public: bool = False) -> dict:
    op = {"operationId": op_id, "summary": summary, "tags": tags,
          "responses": {**responses, **({"500": _resp("InternalError")} if public else _COMMON)}}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if body:
        op["requestBody"] = body
    if public:
        op["security"] = []
    return op


def _JSON_BODY(name: str, desc: str) -> dict:  # noqa: N802  reads like the constants around it
    return {"required": True, "description": desc, "content": {"application/json": {"schema": _ref(name)}}}


_KEY = _path_param("key", "Process key (the BPMN process id), e.g. 'deviation'.")
_VERSION = _path_param("version", "Diagram version number.", {"type": "integer", "minimum": 1})
_RECORD_ID = _path_param("record_id", "Record id, or its number (e.g. DEV-2026-0001).")
_TASK_ID = _path_param("task_id", "Task id.")
_COI = _path_param("coi", "Chain-of-identity identifier of the batch.")
_DOC_NUMBER = _path_param("number", "Document number, e.g. SOP-QA-001.")

_PATHS = {
    "/tokens": {
        "post": _op("issueToken", "Exchange username and password for a bearer token", {
            "201": _json(_ref("Token"), "Token issued."),
            "400": _resp("BadRequest"),
            "401": _json(_ref("Error"), "Wrong username or password (`not_authenticated`)."),
            "415": _resp("UnsupportedMediaType"),
            "423": _json(_ref("Error"), "The account is locked after repeated failures (`account_locked`, "
                                        "details.locked_until)."),
        }, tags=["auth"], body=_JSON_BODY("TokenRequest", "Credentials."), public=True,
            description="Failed attempts count toward lock-out and are audited (URS-SEC-04)."),
    },
    "/openapi.json": {
        "get": _op("getOpenApi", "This document", {
            "200": {"description": "The OpenAPI 3.1 description.",
                    "content": {"application/json": {"schema": {"type": "object"}}}},
        }, tags=["meta"], public=True),
    },
    "/processes": {
        "get": _op("listProcessVersions", "Diagram versions the caller may see", {
            "200": _json({"type": "array", "items": _ref("ProcessVersion")},
                         "Released and retired versions; drafts and versions in validation too for the "
                         "roles Process Owner and Admin."),
        }, tags=["processes"]),
    },
    "/processes/{key}/versions": {
        "post": _op("createProcessVersion", "Submit a new diagram version (kept as draft)", {
            "201": _json(_ref("ProcessVersion"), "The new draft version."),
            "403": _resp("Forbidden"),
            "413": _resp("TooLarge"),
            "415": _resp("UnsupportedMediaType"),
            "422": _resp("Unprocessable"),
        }, tags=["processes"], parameters=[_KEY], description="Role Process Owner. The diagram is parsed with "
            "DTDs and entities refused, its expressions checked and its forms resolved.",
            body={"required": True, "description": "The BPMN 2.0 XML.",
                  "content": {"application/xml": {"schema": {"type": "string"}}}}),
    },
    "/processes/{key}/versions/{version}/bpmn": {
        "get": _op("getProcessBpmn", "The diagram XML of one version", {
            "200": {"description": "The diagram as stored; the ETag is its SHA-256.",
                    "content": {"application/xml": {"schema": {"type": "string"}}}},
            "404": _resp("NotFound"),
        }, tags=["processes"], parameters=[_KEY, _VERSION]),
    },
    "/records": {
        "get": _op("listRecords", "List and search records the caller may see", {
            "200": _json(_ref("RecordList"), "One page, newest first."),
            "400": _resp("BadRequest"),
        }, tags=["records"], parameters=[
            _query_param("process", "Process key.", {"type": "string"}),
            _query_param("status", "Record status.", {"type": "string",
                                                      "enum": ["open", "closed", "cancelled", "error"]}),
            _query_param("q", "Text in the number or title (case-insensitive).", {"type": "string"}),
            _query_param("page", "Page number, from 1.", {"type": "integer", "minimum": 1, "default": 1}),
            _query_param("per_page", "Records per page.", {"type": "integer", "minimum": 1, "maximum": 200,
                                                           "default": 50}),
        ]),
        "post": _op("startRecord", "Start the released version of a process", {
            "201": _json(_ref("RecordSummary"), "The new record."),
            "400": _resp("BadRequest"),
            "403": _resp("Forbidden"),
            "404": _resp("NotFound"),
            "415": _resp("UnsupportedMediaType"),
            "422": _resp("Unprocessable"),
        }, tags=["records"], body=_JSON_BODY("StartRecordRequest", "Process and start form data.")),
    },
    "/records/{record_id}": {
        "get": _op("getRecord", "A record with data, open tasks, signatures, links and task history", {
            "200": _json(_ref("Record"), "The record."),
            "404": _resp("NotFound"),
        }, tags=["records"], parameters=[_RECORD_ID]),
    },
    "/records/{record_id}/audit": {
        "get": _op("getRecordAudit", "The record's audit trail, oldest first", {
            "200": _json({"type": "array", "items": _ref("AuditEntry")}, "Audit entries."),
            "404": _resp("NotFound"),
        }, tags=["records", "audit"], parameters=[_RECORD_ID]),
    },
    "/tasks": {
        "get": _op("listTasks", "Open tasks the caller may complete", {
            "200": _json({"type": "array", "items": _ref("InboxTask")}, "The caller's inbox."),
        }, tags=["tasks"]),
    },
    "/tasks/{task_id}": {
        "get": _op("getTask", "A task with its form", {
            "200": _json(_ref("TaskDetail"), "The task."),
            "404": _resp("NotFound"),
        }, tags=["tasks"], parameters=[_TASK_ID]),
    },
    "/tasks/{task_id}/complete": {
        "post": _op("completeTask", "Validate, sign, complete and move the process on, in one transaction", {
            "200": _json(_ref("Record"), "The updated record."),
            "400": _resp("BadRequest"),
            "401": _json(_ref("Error"), "Not authenticated (`not_authenticated`), or wrong password when "
                                        "signing (`wrong_password`; nothing was signed or saved)."),
            "403": _resp("Forbidden"),
            "404": _resp("NotFound"),
            "409": _resp("Conflict"),
            "415": _resp("UnsupportedMediaType"),
            "422": _resp("Unprocessable"),
            "423": _json(_ref("Error"), "The signer's account is locked after repeated wrong passwords."),
        }, tags=["tasks"], parameters=[_TASK_ID],
            body=_JSON_BODY("CompleteTaskRequest", "Form data, and the signature where the task requires one.")),
    },
    "/audit": {
        "get": _op("listAudit", "System-wide audit entries (roles QA, QA Head, Auditor, Admin)", {
            "200": _json(_ref("AuditPage"), "Entries in chain order."),
            "400": _resp("BadRequest"),
            "403": _resp("Forbidden"),
        }, tags=["audit"], parameters=[
            _query_param("since_seq", "Return entries with seq greater than this.",
                         {"type": "integer", "minimum": 0, "default": 0}),
            _query_param("limit", "Maximum entries.", {"type": "integer", "minimum": 1, "maximum": 1000,
                                                       "default": 100}),
        ]),
    },
    "/audit/verify": {
        "get": _op("verifyAudit", "Verify the audit trail's hash chain (roles QA, QA Head, Auditor, Admin)", {
            "200": _json(_ref("AuditVerification"), "The verification result."),
            "403": _resp("Forbidden"),
        }, tags=["audit"]),
    },
    "/batches/{coi}/results": {
        "post": _op("postBatchResult", "Record a QC result against a batch (not implemented yet)", {
            "201": {"description": "Reserved: the result was recorded."},
            "501": _resp("NotImplemented"),
        }, tags=["batches"], parameters=[_COI],
            body=_JSON_BODY("BatchResultRequest", "The QC result."),
            description="Chain of identity is roadmap item 6; until then this answers 501 `not_implemented`."),
    },
    "/batches/{coi}": {
        "get": _op("getBatch", "A batch's steps, custody, results, windows and deviations (not implemented yet)", {
            "200": {"description": "Reserved: the batch."},
            "501": _resp("NotImplemented"),
        }, tags=["batches"], parameters=[_COI],
            description="Chain of identity is roadmap item 6; until then this answers 501 `not_implemented`."),
    },
    "/documents": {
        "get": _op("listDocuments", "The document library rows the caller may see", {
            "200": _json(_ref("DocumentList"), "One page, by document number."),
            "400": _resp("BadRequest"),
        }, tags=["documents"], parameters=[
            _query_param("q", "Text in the number or title (case-insensitive).", {"type": "string"}),
            _query_param("type", "Document type, exactly (e.g. SOP).", {"type": "string"}),
            _query_param("status", "Documents in use (default), the archive of obsolete ones, or both. Only "
                         "Document Control and QA see obsolete documents; others get none.",
                         {"type": "string", "enum": ["active", "obsolete", "all"], "default": "active"}),
            _query_param("page", "Page number, from 1.", {"type": "integer", "minimum": 1, "default": 1}),
            _query_param("per_page", "Documents per page.", {"type": "integer", "minimum": 1, "maximum": 200,
                                                             "default": 50}),
        ], description="URS-DOC-03: Document Control and QA see every document and version; everyone else "
                       "sees active documents with an effective version, and only that version (plus drafts "
                       "they uploaded or work on in an open approval)."),
        "post": _op("createDocument", "Create a controlled document (role Document Control)", {
            "201": _json(_ref("Document"), "The new document, without versions yet."),
            "400": _resp("BadRequest"),
            "403": _resp("Forbidden"),
            "409": _json(_ref("Error"), "The number exists already; numbers are never reused (`conflict`)."),
            "415": _resp("UnsupportedMediaType"),
        }, tags=["documents"], body=_JSON_BODY("CreateDocumentRequest", "The document's fields."),
            description="Audited (`document_created`). Every problem with the fields is answered at once in "
                        "details.errors."),
    },
    "/documents/{number}": {
        "get": _op("getDocument", "A document with the versions the caller may see", {
            "200": _json(_ref("Document"), "The document."),
            "404": _resp("NotFound"),
        }, tags=["documents"], parameters=[_DOC_NUMBER]),
    },
    "/documents/{number}/versions": {
        "post": _op("uploadDocumentDraft", "Upload a new draft version (role Document Control)", {
            "201": _json(_ref("DocumentVersion"), "The new draft version."),
            "400": _resp("BadRequest"),
            "403": _resp("Forbidden"),
            "404": _resp("NotFound"),
            "409": _json(_ref("Error"), "The document is obsolete (`conflict`)."),
            "413": _json(_ref("Error"), "The file is above the upload limit (`too_large`, details.limit_bytes)."),
            "415": _json(_ref("Error"), "Not sent as multipart/form-data (`unsupported_media_type`), or a file "
                                        "type that is refused by name or content (`unsupported_type`, "
                                        "details.allowed_extensions)."),
        }, tags=["documents"], parameters=[_DOC_NUMBER],
            body={"required": True, "description": "The file and how to number it.",
                  "content": {"multipart/form-data": {"schema": {
                      "type": "object",
                      "properties": {
                          "file": {"type": "string", "contentMediaType": "application/octet-stream",
                                   "description": "PDF, PNG, JPG, TXT, CSV, XLSX or DOCX; checked by name and "
                                                  "first bytes."},
                          "change": {"type": "string", "enum": ["major", "minor"], "default": "major",
                                     "description": "Next major (N+1.0) or next minor (N.m+1) version."},
                          "change_summary": {"type": "string", "description": "What changed."},
                      },
                      "required": ["file"]}}}},
            description="Stored with its SHA-256 and audited (`document_version_added`); nothing is stored "
                        "when the file is refused."),
    },
    "/documents/{number}/versions/{label}/file": {
        "get": _op("getDocumentFile", "The controlled copy of a version, or its original file", {
            "200": {"description": "`application/pdf`: the controlled copy (a PDF stamped on every page, or "
                                   "a cover page for other files; header X-Controlled-Copy carries the stamp). "
                                   "With original=1: the file as uploaded in its own content type, its SHA-256 "
                                   "in X-Content-SHA256. Always `Content-Disposition: attachment`.",
                    "content": {"application/pdf": {"schema": {"type": "string",
                                                               "contentMediaType": "application/pdf"}},
                                "application/octet-stream": {"schema": {"type": "string"}}}},
            "400": _resp("BadRequest"),
            "403": _json(_ref("Error"), "original=1 by a caller without the role Document Control "
                                        "(`not_in_role`)."),
            "404": _resp("NotFound"),
            "500": _json(_ref("Error"), "The stored file no longer matches its SHA-256 (`integrity_error`); "
                                        "it is not served."),
        }, tags=["documents"], parameters=[
            _DOC_NUMBER, _path_param("label", "Version label, e.g. 2.0."),
            _query_param("original", "1 for the original file (Document Control only).",
                         {"type": "string", "enum": ["0", "1", "true", "false"]}),
        ], description="Each controlled copy issued is audited (`controlled_copy_issued`)."),
    },
    "/documents/{number}/obsolete": {
        "post": _op("obsoleteDocument", "Make a document obsolete with a reason (role Document Control)", {
            "200": _json(_ref("Document"), "The document, now obsolete and archived."),
            "400": _resp("BadRequest"),
            "403": _resp("Forbidden"),
            "404": _resp("NotFound"),
            "409": _json(_ref("Error"), "The document is obsolete already (`conflict`)."),
            "415": _resp("UnsupportedMediaType"),
        }, tags=["documents"], parameters=[_DOC_NUMBER],
            body=_JSON_BODY("ObsoleteDocumentRequest", "The reason."),
            description="Withdraws its effective, approved, in-review and draft versions; nothing is deleted "
                        "(URS-AUD-04). Audited (`document_obsoleted`) with the reason."),
    },
    "/documents/{number}/audit": {
        "get": _op("getDocumentAudit", "The audit trail of a document and its versions (Document Control, QA)", {
            "200": _json({"type": "array", "items": _ref("AuditEntry")}, "Audit entries, oldest first."),
            "403": _resp("Forbidden"),
            "404": _resp("NotFound"),
        }, tags=["documents", "audit"], parameters=[_DOC_NUMBER]),
    },
}


def build_document() -> dict:
    """A fresh copy of the document (callers may not change the shared one)."""
    return copy.deepcopy(OPENAPI)


OPENAPI: dict = {
    "openapi": "3.1.0",
    "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
    "info": {
        "title": "cellqms REST API",
        "version": API_VERSION,
        "summary": "Records, tasks, signatures and the audit trail of the cellqms eQMS.",
        "description": "The same runtime, permissions, segregation of duties and audit trail as the web UI. "
                       "JSON in and out, UTF-8, timestamps ISO 8601 UTC. Errors are "
                       "{\"error\": {\"code\", \"message\", \"details\"}}. See docs/api.md.",
        "license": {"name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later"},
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearerAuth": []}],
    "tags": [{"name": n} for n in ("auth", "processes", "records", "tasks", "audit", "documents", "batches", "meta")],
    "paths": _PATHS,
    "components": {
        "schemas": _SCHEMAS,
        "responses": _RESPONSES,
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer",
                           "description": "A token from POST /tokens, sent as 'Authorization: Bearer <token>'."},
        },
    },
}
