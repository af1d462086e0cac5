"""Benchmarks: figures, not tests (``make test`` never runs them).

``python -m benchmarks.run`` (``make bench``): bare SpiffWorkflow in memory against the platform's
``complete_task`` on SQLite and PostgreSQL; see docs/performance.md.
"""
