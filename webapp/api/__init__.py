"""The REST API, version 1 (contract: ../shared/API.md; guide: docs/api.md).

Another door onto engine.Runtime, not a second implementation: each route parses the
request, calls one runtime method and maps the runtime's exceptions to the error shape.
"""
from .base import api_blueprint

# Importing the modules registers their routes and handlers on the blueprint.
from . import audit, auth, batches, documents, errors, meta, processes, records, tasks  # noqa: E402,F401  isort: skip

__all__ = ["api_blueprint"]
