"""The BPMN MIWG reference diagrams (../shared/conformance/bpmn-miwg, CC BY 3.0, BPMN MIWG / OMG):
diagrams nobody on the project wrote, from many modelling tools.

Per file we record whether SpiffWorkflow's parser (behind our safe XML parsing) can build a
spec for each of its processes, and whether our own checks (parse_diagram: one executable
process, forms, lanes, safe expressions) accept it. Most are descriptive models and are
refused; what matters is that every refusal is a ProcessRejected with a sentence, never a crash.
A summary table is printed at the end of the run.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser

from engine.exceptions import ProcessRejected
from engine.parser import parse_diagram, safe_xml
from engine.settings import REPO_ROOT

MIWG = REPO_ROOT.parent / "shared" / "conformance" / "bpmn-miwg"
FILES = sorted(MIWG.glob("*.bpmn")) if MIWG.is_dir() else []
MAX_BYTES = 2 * 1024 * 1024
_summary: dict[str, tuple[str, str, str]] = {}


def library_verdict(data: bytes, filename: str) -> str:
    """'parses: ...' or 'refuses: <error>' for SpiffBpmnParser on our safely parsed tree.

    A process marked isExecutable="false" is descriptive: the library reads it but builds no spec.
    """
    tree = safe_xml(data, MAX_BYTES)
    parser = SpiffBpmnParser()
    try:
        parser.add_bpmn_xml(tree, filename=filename)
        executable = parser.get_process_ids()
        specs = {pid: parser.get_spec(pid) for pid in executable}
    except Exception as exc:  # noqa: BLE001 - the library raises several types; we record which
        return f"refuses: {type(exc).__name__}: {' '.join(str(exc).split())[:90]}"
    descriptive = len(parser.process_parsers) - len(executable)
    return (f"parses: {len(specs)} executable ({sum(len(s.task_specs) for s in specs.values())} task specs), "
            f"{descriptive} descriptive")


@pytest.fixture(scope="module", autouse=True)
def summary_table(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not _summary:
        return
    with capture.global_and_fixture_disabled():
        _print_summary(reporter)


def _print_summary(reporter) -> None:
    reporter.write_line("")
    reporter.write_sep("-", "BPMN MIWG conformance (library parse | cellqms parse_diagram)")
    width = max(len(name) for name in _summary)
    for name, (size, library, ours) in sorted(_summary.items()):
        reporter.write_line(f"{name:<{width}} {size:>8} | {library:<70} | {ours}")
    accepted = sum(1 for _, _, ours in _summary.values() if ours.startswith("accepted"))
    parsed = sum(1 for _, lib, _ in _summary.values() if lib.startswith("parses"))
    reporter.write_line(f"{len(_summary)} files: the library parses {parsed}, cellqms accepts {accepted}, "
                        f"refuses {len(_summary) - accepted} with a reason")


@pytest.mark.urs("URS-PLT-01")
@pytest.mark.urs("URS-PLT-04")
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_a_reference_diagram_is_parsed_or_refused_with_a_reason_never_a_crash(shared_dir, path: Path):
    assert shared_dir in path.parents
    data = path.read_bytes()
    try:
        library = library_verdict(data, path.name)
    except ProcessRejected as refused:  # our safe XML layer refused it before the library saw it
        library = f"not given to the library: {refused.code}"
    try:
        parsed = parse_diagram(data, filename=path.name)
    except ProcessRejected as refused:
        assert refused.message.strip(), "a refusal must say why"
        assert "Traceback" not in refused.message
        assert refused.code
        ours = f"refused ({refused.code}): {' '.join(refused.message.split())[:110]}"
    else:
        assert parsed.sha256 and parsed.spec is not None and parsed.process_id
        ours = f"accepted: process {parsed.process_id}, {len(parsed.user_tasks)} user task(s)"
    _summary[path.name] = (f"{len(data):,}", library, ours)


def test_the_whole_reference_suite_is_examined(shared_dir):
    # Each file is its own parametrized case above (they may run in different test workers).
    if not MIWG.is_dir():
        pytest.skip(f"the MIWG reference diagrams are not present under {MIWG}")
    assert len(FILES) >= 21
    assert {p.name for p in FILES} == {p.name for p in MIWG.glob("*.bpmn")}
