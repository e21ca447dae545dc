"""ar3d.procedural.judge: the demo evaluation's judge and scores on real procedural grids."""

import numpy as np
import pytest

from ar3d.procedural import References, generate_dataset
from ar3d.procedural.judge import conditional_accuracy, judge, score


@pytest.fixture(scope="module")
def samples():
    return generate_dataset(3, "train", seed=3, families=("chair", "stairs", "ladder"))


def test_judge_reads_ground_truth_and_scores_it(samples):
    grids = np.stack([s.occupancy for s in samples])
    fams = [s.family for s in samples]
    meta = [s.metadata() for s in samples]
    refs = References.from_grids(fams, grids)  # each grid is its own nearest reference
    pred, best, attrs, strict, quality = judge(grids, fams, refs, 1, [m["attributes"] for m in meta], full=True)
    assert pred == fams and np.allclose(best, 1.0)
    out = score(meta, pred, attrs, strict, quality)
    assert out["family_accuracy"] == 1.0 and out["n"] == 3
    assert out["attribute_accuracy_mean"] >= 0.8 and out["attribute_checks"] > 0
    assert set(out["quality"]) == {"raw", "delivered"} and out["quality"]["raw"]["empty"] == 0.0
    assert out["quality"]["raw"]["defective_vs_prompt"] == out["quality"]["raw"]["defective"]  # right counts: the same
    # worker processes give exactly what one process gives
    assert judge(grids, fams, refs, 2, [m["attributes"] for m in meta], full=True)[2:] == (attrs, strict, quality)


def test_judge_reads_the_drawn_count_for_the_quality_measure(samples):
    """A ground-truth ladder judged against a prompt with one rung fewer: strict accuracy says
    wrong, the quality measure says clean (the holes are the drawn ladder's), the measure
    against the prompt alone says defective."""
    lad = next(s for s in samples if s.family == "ladder")
    meta = lad.metadata()
    asked = {**meta["attributes"], "rungs": meta["attributes"]["rungs"] - 1}
    grids = lad.occupancy[None]
    refs = References.from_grids(["ladder"], grids)
    pred, _, attrs, strict, quality = judge(grids, ["ladder"], refs, 1, [asked], full=True)
    assert strict[0]["rungs"] == meta["attributes"]["rungs"]
    out = score([{**meta, "attributes": asked}], pred, attrs, strict, quality)
    assert out["strict_per_attribute"]["ladder.rungs"] == 0.0
    assert out["quality"]["raw"]["defective"] == 0.0 and out["quality"]["raw"]["defective_vs_prompt"] == 1.0


def test_unreadable_grids_count_as_wrong(samples):
    grids = np.stack([s.occupancy for s in samples])
    fams = [s.family for s in samples]
    meta = [s.metadata() for s in samples]
    refs = References.from_grids(fams, grids)
    empty = np.zeros_like(grids)
    pred, _, attrs, strict, quality = judge(empty, fams, refs, 1, [m["attributes"] for m in meta], full=True)
    assert attrs == [None, None, None]
    out = score(meta, pred, attrs, strict, quality)
    assert out["attribute_accuracy_mean"] == 0.0 and out["quality"]["raw"]["empty"] == 1.0
    # counted only where the checker reads the ground truth right: still all wrong, never None
    _, _, gt_attrs = judge(grids, fams, refs, 1)
    assert conditional_accuracy(meta, attrs, gt_attrs) == 0.0
    assert conditional_accuracy(meta, gt_attrs, gt_attrs) == 1.0


def test_plan_agreement_splits_misread_prompts_from_misdrawn_plans():
    """A plan is right when it names no other family and states only wanted values; the meshes'
    strict accuracy is then split by whether the plan was right (issue #21's wording against
    composition)."""
    from ar3d.procedural.judge import plan_agreement

    want = {"legs": 3, "size": "short"}
    meta = [
        {"family": "table", "attributes": want, "novel_combo": True},
        {"family": "table", "attributes": want, "novel_combo": True},
        {"family": "table", "attributes": want, "novel_combo": False},
        {"family": "table", "attributes": want, "novel_combo": False},
    ]
    plans = [
        "A short table: a round tabletop resting on three vertical legs spaced evenly around the centre.",
        "A short table: a rectangular tabletop resting on six vertical legs three along each long side.",
        "A short chair made of simple blocks: a flat square seat on three straight legs.",  # another family
        "A tabletop on legs.",  # states no attribute: nothing contradicts the prompt
    ]
    strict = [{"legs": 4, "size": "short"}, {"legs": 6, "size": "tall"}, None, {"legs": 3, "size": "short"}]
    out = plan_agreement(meta, plans, strict)
    assert out["novel_combos"]["plan_right"] == 0.5 and out["seen_combos"]["plan_right"] == 0.5
    assert out["all"]["plan_right"] == 0.5 and out["all"]["n"] == 4
    assert out["novel_combos"]["attributes_stated"] == 1.0 and out["seen_combos"]["attributes_stated"] == 0.5
    # table's strict checkers read legs and size: the right plans' meshes are half and fully
    # right (0.75), the wrong plans' fully wrong and unread (0)
    assert out["all"]["strict_where_plan_right"] == 0.75 and out["all"]["strict_where_plan_wrong"] == 0.0
    assert "strict_where_plan_right" not in plan_agreement(meta, plans)["all"]
