"""Every scenario file is a test, tagged with its URS IDs; every diagram must have all its flows covered."""
from __future__ import annotations

import pytest

from bpmn_tests import runner
from engine.settings import REPO_ROOT

SCENARIOS = runner.discover()
DIAGRAMS = sorted(p.stem for p in (REPO_ROOT / "processes").glob("*.bpmn"))
_results: dict = {}  # scenario path -> ScenarioResult of this session, re-used by the coverage test


def _params():
    params = []
    for process, paths in SCENARIOS.items():
        for path in paths:
            try:
                urs = runner.load_scenario(path, process).urs
            except runner.ScenarioFormatError:
                urs = []  # the test itself reports the format error
            params.append(pytest.param(path, id=f"{process}/{path.stem}",
                                       marks=[pytest.mark.urs(i) for i in urs]))
    return params


@pytest.mark.parametrize("path", _params())
def test_scenario(path, db_url):
    scenario = runner.load_scenario(path)
    result = runner.run_scenario(scenario, db_url)
    _results[path] = result
    assert result.passed, f"{scenario.test_id}: {result.reason}"


@pytest.mark.urs("URS-VAL-02")
@pytest.mark.parametrize("process", DIAGRAMS)
def test_scenarios_cover_every_sequence_flow_of_the_diagram(process, db_url_factory):
    paths = SCENARIOS.get(process, [])
    assert paths, f"{process}.bpmn has no scenario files in bpmn_tests/{process}/"
    diagram = runner.diagram_flows(REPO_ROOT / "processes" / f"{process}.bpmn")
    covered = set()
    for path in paths:
        result = _results.get(path)
        if result is None or result.sha256 != diagram.sha256:
            result = runner.run_scenario(runner.load_scenario(path, process), db_url_factory(), diagram=diagram)
        if result.passed:
            covered |= result.covered
    uncovered = [f"{flow} ({s} -> {t})" for flow, (s, t) in diagram.flows.items() if flow not in covered]
    assert not uncovered, f"{process}: flows no passing scenario takes: {', '.join(uncovered)}"
