"""Diagrams as configuration items: list versions, read a version's BPMN, submit a draft (URS-VAL-01)."""
from __future__ import annotations

from flask import Response, jsonify, request, url_for

from . import queries
from .base import PROCESS_OWNER_ROLE, XML_MIMETYPES, ApiError, api_blueprint, current_user, require_role, runtime
from .views import version_view


@api_blueprint.get("/processes")
def list_processes():
    """Every diagram version the caller may see: released (and retired) ones; drafts too for
    process owners and administrators."""
    rt = runtime()
    with rt.db.sessionmaker() as session:
        return jsonify([version_view(v) for v in queries.process_versions(session, current_user())])


@api_blueprint.get("/processes/<key>/versions/<int:version>/bpmn")
def get_bpmn(key: str, version: int):
    """The diagram exactly as stored; its SHA-256 is the ETag."""
    rt = runtime()
    with rt.db.sessionmaker() as session:
        row = queries.process_version(session, current_user(), key, version)
        resp = Response(bytes(row.bpmn), mimetype="application/xml")
        resp.headers["ETag"] = f'"{row.sha256}"'
        resp.headers["X-Content-SHA256"] = row.sha256
        return resp


@api_blueprint.post("/processes/<key>/versions")
def create_version(key: str):
    """A process owner submits a new diagram version; it is parsed and checked, then kept as a draft.

    The body is the BPMN XML itself. A diagram the parser refuses (not well-formed, DOCTYPE/XXE,
    unsafe expression, missing form or lane) is 422 with the parser's reason.
    """
    require_role({PROCESS_OWNER_ROLE}, "Submitting a diagram version")
    if request.mimetype not in XML_MIMETYPES:
        raise ApiError(415, "unsupported_media_type",
                       "Send the BPMN diagram as the body with 'Content-Type: application/xml'.",
                       {"content_type": request.content_type or "", "accepted": sorted(XML_MIMETYPES)})
    rt = runtime()
    limit = rt.settings.max_bpmn_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"The diagram is larger than the limit of {limit:,} bytes.",
                       {"limit_bytes": limit})
    data = request.get_data(cache=False)
    if len(data) > limit:
        raise ApiError(413, "too_large", f"The diagram is larger than the limit of {limit:,} bytes.",
                       {"limit_bytes": limit})
    if not data.strip():
        raise ApiError(422, "invalid_xml", "The request body is empty; send the BPMN XML.")
    version = rt.create_draft_version(current_user(), key, data)
    resp = jsonify(version_view(version))
    resp.status_code = 201
    resp.headers["Location"] = url_for("api.get_bpmn", key=key, version=version.version)
    return resp
