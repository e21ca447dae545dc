"""scripts/demo_eval_table.py: the model card's before/after table from evaluation reports."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _mode(n, family, strict, defective):
    return {"n": n, "family_accuracy": family, "attribute_accuracy_mean": strict + 0.05, "attribute_checks": 1200 * n // 1000,
            "strict_attribute_accuracy_mean": strict,
            "quality": {"delivered": {"defective": defective, "perforated": defective / 2}}}  # fmt: skip


def _report(folder, strict):
    folder.mkdir()
    ev = {k: _mode(1000, 0.9, s, 0.3) for k, s in zip(("one_step", "two_step_coarse", "two_step_refined"), strict)}
    (folder / "training_report.json").write_text(json.dumps({"eval": ev}))
    return folder


def _run(*args):
    return subprocess.run([sys.executable, str(REPO / "scripts" / "demo_eval_table.py"), *args], capture_output=True, text=True)


def test_table_and_z_scores(tmp_path):
    a = _report(tmp_path / "a", (0.60, 0.60, 0.60))
    b = _report(tmp_path / "b", (0.60, 0.62, 0.70))
    run = _run(f"before={a}", f"after={b}")
    assert run.returncode == 0, run.stderr
    assert "| refined (step 2) | attributes (strict) | 60.0% | 70.0% |" in run.stdout
    assert "| one-step | unwanted holes or fragments | 30.0% | 30.0% |" in run.stdout
    # 1200 checks each: 0.60 -> 0.70 is z = 5.1, 0.60 -> 0.62 is within noise
    assert "after: one-step +0.0, coarse (step 1) +1.0, refined (step 2) +5.1" in run.stdout


def test_a_folder_without_an_evaluation_is_named(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "training_report.json").write_text("{}")
    run = _run(f"x={tmp_path / 'm'}")
    assert run.returncode != 0 and "no 'eval' section" in run.stderr and "--stages eval" in run.stderr


def test_a_threshold_column_reads_the_thresholds_section(tmp_path):
    """``path@T``: the same codes judged at logit threshold T (``--eval-thresholds``) as a column."""
    folder = _report(tmp_path / "a", (0.60, 0.60, 0.60))
    report = json.loads((folder / "training_report.json").read_text())
    report["eval"]["thresholds"] = {"-3": {k: _mode(1000, 0.9, 0.55, 0.10)
                                           for k in ("one_step", "two_step_coarse", "two_step_refined")}}  # fmt: skip
    (folder / "training_report.json").write_text(json.dumps(report))
    run = _run(f"v2={folder}", f"{folder}@-3.0")
    assert run.returncode == 0, run.stderr
    assert "| mode | metric | v2 | a@-3.0 |" in run.stdout
    assert "| one-step | unwanted holes or fragments | 30.0% | 10.0% |" in run.stdout
    assert "| one-step | attributes (strict) | 60.0% | 55.0% |" in run.stdout
    missing = _run(f"{folder}@-2")
    assert missing.returncode != 0 and "no evaluation at threshold -2" in missing.stderr and "-3" in missing.stderr
