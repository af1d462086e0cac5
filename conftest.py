"""Root pytest plugin: the requirements-to-tests trace matrix (URS-VAL-04).

Every test marked ``@pytest.mark.urs("URS-XXX-NN")`` (scenario files carry the same IDs)
is collected with its outcome. At the end of the run the matrix is written to
``test-output/trace-matrix-<database>.md`` and summarised on the terminal, including the
requirements of ../shared/URS.md that no test names.
"""
from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent
URS_FILE = ROOT.parent / "shared" / "URS.md"
_results: dict[str, dict[str, str]] = defaultdict(dict)


# The suite creates hundreds of accounts: same argon2id algorithm, minimal cost (see
# signatures/credentials.py; tests/unit/signatures checks the product default stays strong).
os.environ.setdefault("CELLQMS_PASSWORD_HASH_PROFILE", "test")


def pytest_collection_modifyitems(session, config, items):
    # Carried on every report, so the matrix also works when pytest-xdist runs tests in workers.
    for item in items:
        for marker in item.iter_markers("urs"):
            if marker.args:
                item.user_properties.append(("urs", marker.args[0]))


def pytest_runtest_logreport(report):
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        for key, urs in report.user_properties:
            if key == "urs":
                _results[urs][report.nodeid] = report.outcome


def _requirements() -> dict[str, str]:
    if not URS_FILE.is_file():
        return {}
    reqs = {}
    for line in URS_FILE.read_text(encoding="utf-8").splitlines():
        m = re.match(r"- (URS-[A-Z]+-\d+) (.*)", line.strip())
        if m:
            reqs[m.group(1)] = m.group(2)
    return reqs


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _results:
        return
    reqs = _requirements()
    on_postgres = os.environ.get("CELLQMS_TEST_DATABASE", "sqlite").startswith("postgresql")
    database = "postgresql" if on_postgres else "sqlite"
    lines = [f"# Trace matrix ({database})", "",
             "| requirement | tests | passed | failed/skipped |", "|---|---|---|---|"]
    for urs in sorted(set(reqs) | set(_results)):
        tests = _results.get(urs, {})
        passed = sum(1 for o in tests.values() if o == "passed")
        lines.append(f"| {urs} | {len(tests)} | {passed} | {len(tests) - passed} |")
    lines += ["", "## Tests per requirement", ""]
    for urs in sorted(_results):
        lines.append(f"### {urs} {reqs.get(urs, '(not in URS.md)')}")
        lines += [f"- {outcome}: `{nodeid}`" for nodeid, outcome in sorted(_results[urs].items())]
        lines.append("")
    untested = sorted(set(reqs) - set(_results))
    lines += ["## Requirements without a test", ""] + [f"- {u} {reqs[u]}" for u in untested]
    out = Path(os.environ.get("CELLQMS_TRACE_DIR") or ROOT / "test-output") / f"trace-matrix-{database}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    covered = len(set(reqs) & set(_results))
    terminalreporter.write_sep("-", "URS trace matrix")
    terminalreporter.write_line(f"{covered} of {len(reqs)} requirements demonstrated by tests; matrix: {out}")
    if untested:
        terminalreporter.write_line("without a test: " + " ".join(untested))
