"""scripts/demo_grid.py (the model card's before/after grid) on the bundled demo model: one
prompt, one-step + coarse + refined, real generation (CPU), real Workbench render."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("bpy")
REPO = Path(__file__).resolve().parents[1]


def test_grid_of_one_prompt_has_a_render_and_a_verdict_per_column(tmp_path):
    from PIL import Image

    out = tmp_path / "grid.png"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "demo_grid.py"), "--out", str(out), "--two-step", "--limit", "1",
                          "--refs-per-family", "2", "--cell", "96"], capture_output=True, text=True, timeout=900, env=env)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    (row,) = report["rows"]
    assert row["prompt"] == "a wooden chair with four legs" and set(report["ok"]) == {"one-step", "coarse", "refined"}
    for col in ("one-step", "coarse", "refined"):
        cell = row[col]
        q = cell["quality"]
        assert cell["ok"] == (cell["verdict"] == "ok")
        assert ("extra hole" in cell["verdict"]) == (q["unwanted_holes"] > 0)
        assert ("fragment" in cell["verdict"]) == (q["fragments"] > 0)
        assert set(cell["strict"]) >= {"legs"}
    img = Image.open(out)
    assert img.size[0] > 3 * 96 and img.size[1] > 96
    pixels = __import__("numpy").asarray(img.convert("L"))
    assert (pixels < 200).mean() > 0.01  # the meshes were drawn, not blank cells
