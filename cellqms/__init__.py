"""cellqms: an open-source eQMS for cell and gene therapy. This package holds the command line."""
from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("cellqms")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
