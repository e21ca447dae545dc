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
    # worker processes give exactly what one process gives
    assert judge(grids, fams, refs, 2, [m["attributes"] for m in meta], full=True)[2:] == (attrs, strict, quality)


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
