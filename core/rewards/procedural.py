"""Rewards for the procedural demo model: is the generated shape of the prompted family, with
the prompted attributes (leg count, steps, tall/short …)?

They read the prompt's ground truth from ``RewardBatch.metadata`` (``{"family": …,
"attributes": {…}}``, as the procedural dataset's JSONL carries it) or, where a sample has none
(a plain prompt file), ``procedural.family`` and ``procedural.attributes*`` read it from the
prompt itself (``ar3d.procedural.read_caption``: "a ladder with 6 rungs" → ladder, rungs 6), so
any prompt list in the demo's families trains with them; a prompt naming no family fails with
that reason. ``procedural.quality`` takes metadata only: on a general prompt ("a tree house")
it counts fragments, never a family's topology. They judge the decoded 64³
grid with ``ar3d.procedural.evaluate`` — the nearest-family classifier and the attribute
checkers, which share no weights with the policy, so the policy cannot learn to please a model
that also wrote it. These are the rewards of the demo model's Hi-GRPO run (issue #7).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import RewardBatch, RewardConfigError, SampleScore


def _grid(batch: RewardBatch, i: int) -> np.ndarray | None:
    if batch.occupancy is None or batch.occupancy[i] is None:
        return None
    return np.asarray(batch.occupancy[i], dtype=bool)


def _meta(batch: RewardBatch, i: int) -> dict | None:
    m = batch.metadata[i] if batch.metadata is not None else None
    return m if m and m.get("family") else None


def _meta_or_prompt(batch: RewardBatch, i: int) -> dict | None:
    """The metadata's ground truth, else what the prompt names (a plain prompt file)."""
    m = _meta(batch, i)
    if m is not None:
        return m
    from ...procedural.read_caption import read_caption

    family, attributes = read_caption(batch.prompts[i])
    return {"family": family, "attributes": dict(attributes)} if family else None


class FamilyMatch:
    """1 when the nearest procedural reference of the grid is of the prompted family, else 0
    (name "procedural.family"; details: the family judged and its IoU).

    references: a ``References`` object, the path of a ``.npz`` saved by
    ``save_references``, or None to build ``per_family`` fresh samples per family (seconds).
    """

    name = "procedural.family"
    sub_scores = 1
    value_range = (0.0, 1.0)
    needs = frozenset({"occupancy"})

    def __init__(self, references=None, per_family: int = 12, seed: int = 10_000) -> None:
        from ...procedural import evaluate

        self._evaluate = evaluate
        if references is None:
            references = evaluate.build_references(per_family=per_family, seed=seed)
        elif isinstance(references, (str, Path)):
            references = load_references(references)
        self.references = references

    def score(self, batch: RewardBatch) -> list[SampleScore]:
        out = [SampleScore.fail("no decoded occupancy grid") for _ in range(len(batch))]
        todo = []
        for i in range(len(batch)):
            g, m = _grid(batch, i), _meta_or_prompt(batch, i)
            if m is None:
                out[i] = SampleScore.fail("no procedural family in the sample's metadata or its prompt")
            elif g is not None and not g.any():
                out[i] = SampleScore(0.0, details={"family": m["family"], "judged": None, "note": "empty grid"})
            elif g is not None:
                todo.append(i)
        if todo:
            judged, iou = self._evaluate.classify_batch([_grid(batch, i) for i in todo], self.references)
            for i, fam, v in zip(todo, judged, iou):
                want = _meta_or_prompt(batch, i)["family"]
                out[i] = SampleScore(float(fam == want), details={"family": want, "judged": fam, "iou": round(float(v), 4)})
        return out


class AttributeMatch:
    """Fraction of the prompted attributes the grid shows (name "procedural.attributes", or
    "procedural.attributes_strict" with ``strict=True``).

    Only attributes with a checker count (``ar3d.procedural.evaluate.CHECKERS``; strict:
    ``ar3d.procedural.strict.STRICT_CHECKERS``, counts a person would agree with, read off the
    meshed solid); a family without any, or an empty grid's unreadable attributes, are reported
    in the details. A grid the checkers cannot read scores 0 (counted wrong, as the demo model's
    evaluation does).
    """

    name = "procedural.attributes"
    sub_scores = 1
    value_range = (0.0, 1.0)
    needs = frozenset({"occupancy"})

    def __init__(self, strict: bool = False) -> None:
        from ...procedural import evaluate, strict as strict_checkers

        self.strict = bool(strict)
        if self.strict:
            self.name = "procedural.attributes_strict"
            self._checkers = strict_checkers.STRICT_CHECKERS
            self._check = strict_checkers.check_attributes_strict
        else:
            self._checkers = evaluate.CHECKERS
            self._check = evaluate.check_attributes

    def score(self, batch: RewardBatch) -> list[SampleScore]:
        out = []
        for i in range(len(batch)):
            g, m = _grid(batch, i), _meta_or_prompt(batch, i)
            if m is None:
                out.append(SampleScore.fail("no procedural family in the sample's metadata or its prompt"))
                continue
            if g is None:
                out.append(SampleScore.fail("no decoded occupancy grid"))
                continue
            fam, want = m["family"], m.get("attributes", {})
            checked = [k for k in self._checkers.get(fam, {}) if k in want]
            if not checked:
                out.append(SampleScore.fail(f"no checkable attribute for family '{fam}'"))
                continue
            try:
                got = self._check(fam, g) if g.any() else {}
            except Exception as e:  # a degenerate grid the checkers cannot read
                got = {}
                note = f"checker failed: {type(e).__name__}"
            else:
                note = None
            right = {k: got.get(k) == want[k] for k in checked}
            details = {"want": {k: want[k] for k in checked}, "got": {k: got.get(k) for k in checked}}
            if note:
                details["note"] = note
            out.append(SampleScore(sum(right.values()) / len(right), details=details))
        return out


class MeshQuality:
    """Is the mesh clean for its family (name "procedural.quality")? 1 when it has no through-hole
    beyond the family's expected topology and no floating fragment, 1 / (1 + unwanted holes +
    fragments) otherwise, 0 for a grid that gives no mesh (``ar3d.procedural.quality``).

    Where the strict checkers read a count that sets the family's topology (a ladder's rungs, a
    stool's footrest …), the drawn object sets the holes it may have: a clean mesh with a wrong
    count loses the attribute reward, not this one too. Without procedural metadata only
    fragments count (any genus is allowed), so the reward also works on general prompts.
    ``delivered=True`` judges the mesh after the pipeline's relative debris removal; the default
    judges what the model made, so RL learns not to make crumbs.
    """

    name = "procedural.quality"
    sub_scores = 1
    value_range = (0.0, 1.0)
    needs = frozenset({"occupancy"})

    def __init__(self, delivered: bool = False, perforation_min: int = 3) -> None:
        from ...procedural import quality
        from ..mesh import MeshConfig

        self._quality = quality
        mesh = MeshConfig() if delivered else MeshConfig(min_fragment_fraction=0.0)
        self.config = quality.QualityConfig(mesh=mesh, perforation_min=perforation_min)

    def _shown(self, meta: dict, grid) -> dict | None:
        """The counts the strict checkers read off the grid where they set the family's topology:
        a clean mesh with a wrong count is left to the attribute reward, not punished twice."""
        family = meta.get("family")
        if family not in self._quality.DRAWN_ATTRIBUTES or not grid.any():
            return None
        from ...procedural.strict import check_attributes_strict

        try:
            return check_attributes_strict(family, grid)
        except Exception:  # unreadable: the prompt's counts set the topology
            return None

    def score(self, batch: RewardBatch) -> list[SampleScore]:
        out = []
        for i in range(len(batch)):
            g = _grid(batch, i)
            if g is None:
                out.append(SampleScore.fail("no decoded occupancy grid"))
                continue
            m = _meta(batch, i) or {}
            shown = self._shown(m, g)
            q = self._quality.assess(g, m.get("family"), m.get("attributes"), self.config, shown=shown)
            out.append(SampleScore(q.score, details=q.to_dict()))
        return out


def save_references(references, path: str | Path) -> None:
    np.savez_compressed(path, families=references.families, features=references.features.astype(np.uint8))


def load_references(path: str | Path):
    from ...procedural.evaluate import References

    try:
        with np.load(path, allow_pickle=False) as z:
            features = z["features"]
            if "n_features" in z:  # bit-packed, as scripts/train_demo.py --stages refs writes them
                features = np.unpackbits(features, axis=1, count=int(z["n_features"]))
            features = features.astype(np.float32)
            return References(z["families"].astype(str), features, features.sum(axis=1))
    except (OSError, KeyError, ValueError) as e:
        raise RewardConfigError(f"cannot read procedural references '{path}': {e}") from e
