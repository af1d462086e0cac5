"""The requirements-to-tests trace matrix is printed from the tests' URS markers (URS-VAL-04)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.urs("URS-VAL-04")
def test_the_trace_matrix_lists_each_requirement_with_its_tests_and_results_and_the_untested_ones(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.urs('URS-SIG-01')\n"
        "def test_signing_asks_for_the_password():\n    assert True\n\n"
        "@pytest.mark.urs('URS-SIG-01')\n"
        "@pytest.mark.urs('URS-AUD-02')\n"
        "def test_a_failing_demonstration():\n    assert False\n",
        encoding="utf-8")
    out_dir = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CELLQMS_TRACE_DIR": str(out_dir),
           "CELLQMS_TEST_DATABASE": "sqlite"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-q", "-o", "addopts=",
         "-o", "markers=urs(id): requirement", "--rootdir", str(tmp_path), str(tmp_path / "test_sample.py")],
        capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr  # one sample test fails on purpose
    assert "URS trace matrix" in run.stdout
    matrix = (out_dir / "trace-matrix-sqlite.md").read_text(encoding="utf-8")
    assert "| URS-SIG-01 | 2 | 1 | 1 |" in matrix
    assert "| URS-AUD-02 | 1 | 0 | 1 |" in matrix
    assert "- passed: `test_sample.py::test_signing_asks_for_the_password`" in matrix
    assert "- failed: `test_sample.py::test_a_failing_demonstration`" in matrix
    if (ROOT.parent / "shared" / "URS.md").is_file():
        untested = matrix.split("## Requirements without a test", 1)[1]
        assert "URS-DEV-01" in untested and "URS-SIG-01" not in untested
