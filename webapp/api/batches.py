"""Batches (chain of identity): part of the contract, built with roadmap item 6; 501 until then."""
from __future__ import annotations

from .base import ApiError, api_blueprint

_MESSAGE = ("Batches and the chain of identity are not implemented yet (roadmap item 6, CAR-T manufacturing); "
            "this endpoint answers 501 until then.")


@api_blueprint.post("/batches/<coi>/results")
def post_batch_result(coi: str):
    raise ApiError(501, "not_implemented", _MESSAGE, {"coi": coi})


@api_blueprint.get("/batches/<coi>")
def get_batch(coi: str):
    raise ApiError(501, "not_implemented", _MESSAGE, {"coi": coi})
