"""JSON Schema forms for user tasks: loading, checking and server-side validation (URS-PLT-03)."""
from .validate import FormError, FormRegistry, humanise

__all__ = ["FormError", "FormRegistry", "humanise"]
