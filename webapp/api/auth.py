"""Bearer tokens: POST /tokens issues one; every other call must send it (API.md, Authentication)."""
from __future__ import annotations

from flask import current_app, g, jsonify, request

from engine.exceptions import NotAuthenticated

from .base import api_blueprint, iso, json_body, public, runtime
from .schemas import REQUEST_SCHEMAS


@api_blueprint.before_request
def authenticate_request():
    """Put the token's user on flask.g, or answer 401 before the view runs (URS-SEC-02)."""
    view = current_app.view_functions.get(request.endpoint)
    if getattr(view, "public", False) or request.method == "OPTIONS":  # OPTIONS only lists the methods
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated("Send 'Authorization: Bearer <token>'; get a token from POST /api/v1/tokens.")
    g.user = runtime().user_for_token(token)
    return None


@api_blueprint.post("/tokens")
@public
def issue_token():
    """Exchange username and password for a bearer token; failures count toward lock-out (URS-SEC-04)."""
    body = json_body(REQUEST_SCHEMAS["TokenRequest"])
    token, expires_at = runtime().issue_token(body["username"], body["password"])
    return jsonify({"token": token, "token_type": "Bearer", "expires_at": iso(expires_at)}), 201
