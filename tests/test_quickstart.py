"""The quick start's pipeline at smoke scale: every stage runs and the report has its parts (not its numbers)."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

pytestmark = pytest.mark.slow  # the whole quick start at smoke scale

ROOT = Path(__file__).resolve().parents[1]
ROWS = ("SimpleClick-style base, no signal", "GraCo, no signal", "GraCo, oracle granularity",
        "GraCo, phrase (part name)")


def test_quickstart_smoke_writes_a_complete_report(tmp_path):
    out = tmp_path / "quickstart"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "quickstart.py"), "--smoke", "--out", str(out)],
                            capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for index in range(1, 7):
        assert f"[quickstart {index}/6]" in result.stdout
    report = (out / "report.md").read_text()
    assert "| model, signal | NoC@80 | NoC@85 | NoC@90 | IoU@1 (%) | >=max@85 |" in report
    for row in ROWS:
        assert f"| {row} |" in report
    assert "The oracle granularity needs" in report
    assert "![mIoU versus clicks](miou.png)" in report and "![granularity strip](granularity_strip.png)" in report
    plot = cv2.imread(str(out / "miou.png"))
    strip = cv2.imread(str(out / "granularity_strip.png"))
    assert plot is not None and strip is not None
    assert strip.shape[1] == 10 * strip.shape[0], "ten square tiles side by side"
    results = json.loads((out / "results.json").read_text())
    assert set(results["metrics"]) == set(ROWS) and results["parts"] > 0
    assert (out / "data" / "SOURCE.md").is_file()
