"""The API's own description."""
from __future__ import annotations

from flask import jsonify

from .base import api_blueprint, public
from .openapi import OPENAPI


@api_blueprint.get("/openapi.json")
@public
def openapi_document():
    """The OpenAPI 3.1 document; public, so integrators can generate a client before holding a token."""
    return jsonify(OPENAPI)
