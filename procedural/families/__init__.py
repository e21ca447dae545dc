"""Registry of procedural object families: discrete attributes, continuous proportions, builders.

Each :class:`Family` samples *attributes* (the discrete, caption-worthy facts used for evaluation:
``legs``, ``steps``, ``size`` …) and then continuous *proportions* given them, and builds a z-up
:class:`~ar3d.procedural.geometry.Shape` standing on z = 0 with its front facing -Y.

Visibility at 64³. Sizes are chosen against the longest side L of the object (the grid maps L to
64 voxels): thin parts (legs, rails, rungs, blades, boards) are >= ~0.035 L thick (>= 2 voxels),
gaps that make counts readable (between legs, rungs, rails, shelves, steps) leave >= 3 empty voxels.

Size classes are aspect ratios of the object's bounding box (``W`` = x extent, ``D`` = y, ``H`` =
z), so they survive the grid's scale normalisation: each family's ``ratio_classes`` lists, per
class, the intervals every sample of that class lies in (enforced by rejection sampling). The
intervals of different classes leave a gap, so a grid's bounding box tells the class back.

Held-out combinations (see also :mod:`ar3d.procedural.captions` for templates). Each family lists
in ``heldout`` a few partial attribute assignments, e.g. chair ``{"legs": 3, "size": "tall"}``.
A sample whose attributes match any of them is a *novel combination*: it only ever appears in the
test split. Every value of every attribute still occurs in training, in other combinations, so a
held-out combination tests composition, not an unseen word. The rule is the explicit list below
(:func:`Family.is_heldout`), so it is deterministic and independent of seeds.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .buildings import (
    arch_build,
    arch_sample,
    house_build,
    house_sample,
    snowman_build,
    snowman_sample,
    stairs_build,
    stairs_sample,
    tower_build,
    tower_sample,
)
from .furniture import (
    bed_build,
    bed_sample,
    bench_build,
    bench_sample,
    bookshelf_build,
    bookshelf_sample,
    chair_build,
    chair_sample,
    stool_build,
    stool_sample,
    table_build,
    table_sample,
)
from .household import (
    bottle_build,
    bottle_sample,
    lamp_build,
    lamp_sample,
    mug_build,
    mug_sample,
    vase_build,
    vase_sample,
)
from .nature import (
    cactus_build,
    cactus_sample,
    mushroom_build,
    mushroom_sample,
    pine_build,
    pine_sample,
    tree_build,
    tree_sample,
)
from .objects import (
    car_build,
    car_sample,
    fence_build,
    fence_sample,
    ladder_build,
    ladder_sample,
    ring_build,
    ring_sample,
    rocket_build,
    rocket_sample,
    windmill_build,
    windmill_sample,
)

__all__ = ["Family", "FAMILIES", "FAMILY_NAMES", "get_family", "RATIOS", "extents_ratio_class"]


# Aspect ratios of a bounding box's extents e = (W, D, H) and the attributes.
RATIOS: dict[str, Callable[[np.ndarray, dict], float]] = {
    "H/W": lambda e, a: e[2] / e[0],
    "H/D": lambda e, a: e[2] / e[1],
    "W/D": lambda e, a: e[0] / e[1],
    "H/WD": lambda e, a: e[2] / max(e[0], e[1]),
    # an arcade's height over the width of one bay (opening + pillar)
    "H/bay": lambda e, a: e[2] / (e[0] / a["openings"]),
}


def extents_ratio_class(classes: dict, extents, attrs: dict) -> str:
    """The class whose intervals the extents fit best (distance in log-ratio outside the intervals)."""
    best, best_d = None, math.inf
    for name, intervals in classes.items():
        d = 0.0
        for ratio, (lo, hi) in intervals.items():
            r = RATIOS[ratio](extents, attrs)
            if r < lo:
                d += math.log(lo / r)
            elif r > hi:
                d += math.log(r / hi)
        if d < best_d:
            best, best_d = name, d
    return best


def _matches(attrs: dict, partial: dict) -> bool:
    return all(attrs.get(k) == v for k, v in partial.items())


@dataclass(frozen=True)
class Family:
    """One object family: its attributes, held-out combinations and geometry."""

    name: str
    attributes: dict  # attribute -> tuple of values (order = canonical)
    sample: Callable  # (rng, attrs) -> dict of continuous proportions
    build: Callable  # (params incl. attrs) -> Shape
    heldout: tuple = ()  # partial attribute dicts reserved for the test split
    invalid: tuple = ()  # partial attribute dicts never generated (nonsense combinations)
    ratio_attr: str | None = None  # attribute that is an aspect-ratio class ("size", "shape")
    ratio_classes: dict = field(default_factory=dict)  # class -> {ratio: (lo, hi)}

    def combos(self) -> list[dict]:
        """All valid attribute combinations, in canonical order."""
        keys = list(self.attributes)
        out = []
        for values in itertools.product(*(self.attributes[k] for k in keys)):
            a = dict(zip(keys, values))
            if not any(_matches(a, p) for p in self.invalid):
                out.append(a)
        return out

    def is_heldout(self, attrs: dict) -> bool:
        return any(_matches(attrs, p) for p in self.heldout)

    def split_combos(self, split: str) -> list[dict]:
        """Combinations of a split: train = not held out; test-only = held out."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return [a for a in self.combos() if self.is_heldout(a) == (split == "test")]

    def sample_attributes(self, rng: np.random.Generator, split: str, novel_fraction: float = 0.5) -> dict:
        """Uniform over the split's combinations; the test split draws a held-out one with
        probability ``novel_fraction``, else an ordinary one (then only its caption is unseen)."""
        if split == "test" and rng.random() < novel_fraction:
            pool = self.split_combos("test")
        else:
            pool = self.split_combos("train")
        return dict(pool[int(rng.integers(len(pool)))])

    def sample_params(self, rng: np.random.Generator, attrs: dict, tries: int = 200):
        """(params, shape): continuous proportions rounded for JSON, checked against the size class."""
        for _ in range(tries):
            raw = self.sample(rng, attrs)
            params = {**attrs, **{k: _json_value(v) for k, v in raw.items()}}
            shape = self.build(params)
            if self.ratio_attr is None:
                return params, shape
            lo, hi = shape.bounds()
            ext = hi - lo
            ok = all(
                a <= RATIOS[r](ext, attrs) <= b for r, (a, b) in self.ratio_classes[attrs[self.ratio_attr]].items()
            )
            if ok:
                return params, shape
        raise RuntimeError(f"{self.name}: no proportions for {attrs} within the size class after {tries} tries")

    def ratio_class(self, extents, attrs: dict) -> str | None:
        if self.ratio_attr is None:
            return None
        return extents_ratio_class(self.ratio_classes, np.asarray(extents, float), attrs)


def _json_value(v):
    """Plain JSON types, floats rounded to 4 decimals: the builders see exactly what is saved."""
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return round(float(v), 4)
    return v


FAMILIES: dict[str, Family] = {}


def _register(f: Family):
    FAMILIES[f.name] = f


_register(
    Family(
        "chair",
        {"legs": (3, 4), "armrests": (True, False), "size": ("tall", "short")},
        chair_sample,
        chair_build,
        heldout=({"legs": 3, "size": "tall"},),
        ratio_attr="size",
        ratio_classes={"tall": {"H/W": (1.75, 2.7)}, "short": {"H/W": (1.15, 1.6)}},
    )
)
_register(
    Family(
        "table",
        {"legs": (3, 4, 6), "size": ("tall", "short", "wide")},
        table_sample,
        table_build,
        heldout=({"legs": 3, "size": "short"}, {"legs": 6, "size": "tall"}),
        invalid=({"legs": 3, "size": "wide"},),
        ratio_attr="size",
        ratio_classes={
            "tall": {"H/W": (1.05, 1.45)},
            "short": {"H/W": (0.32, 0.48), "W/D": (0.99, 1.6)},
            "wide": {"H/W": (0.3, 0.42), "W/D": (1.75, 2.2)},
        },
    )
)
_register(
    Family(
        "stool",
        {"legs": (3, 4), "size": ("tall", "short"), "footrest": (True, False)},
        stool_sample,
        stool_build,
        heldout=({"legs": 4, "size": "short", "footrest": True}, {"legs": 3, "size": "tall", "footrest": False}),
        ratio_attr="size",
        ratio_classes={"tall": {"H/W": (1.5, 2.6)}, "short": {"H/W": (0.8, 1.25)}},
    )
)
_register(
    Family(
        "bench",
        {"legs": (4, 6), "backrest": (True, False), "size": ("long", "short")},
        bench_sample,
        bench_build,
        heldout=({"legs": 6, "size": "short"},),
        ratio_attr="size",
        ratio_classes={"long": {"W/D": (3.5, 5.7)}, "short": {"W/D": (2.3, 3.2)}},
    )
)
_register(
    Family(
        "bed",
        {"pillows": (1, 2), "footboard": (True, False), "size": ("single", "double")},
        bed_sample,
        bed_build,
        heldout=(
            {"pillows": 1, "size": "double", "footboard": True},
            {"pillows": 2, "size": "single", "footboard": False},
        ),
        ratio_attr="size",
        ratio_classes={"single": {"W/D": (0.42, 0.57)}, "double": {"W/D": (0.68, 0.9)}},
    )
)
_register(
    Family(
        "bookshelf",
        {"shelves": (2, 3, 4, 5), "size": ("tall", "wide"), "back": (True, False)},
        bookshelf_sample,
        bookshelf_build,
        heldout=({"shelves": 4, "size": "wide"}, {"shelves": 2, "back": False}),
        ratio_attr="size",
        ratio_classes={"tall": {"H/W": (1.75, 2.45)}, "wide": {"H/W": (0.5, 0.8)}},
    )
)
_register(
    Family(
        "mug",
        {"handle": (True, False), "size": ("tall", "short")},
        mug_sample,
        mug_build,
        heldout=({"handle": False, "size": "tall"},),
        ratio_attr="size",
        ratio_classes={"tall": {"H/D": (1.2, 1.55)}, "short": {"H/D": (0.65, 0.9)}},
    )
)
_register(
    Family(
        "bottle",
        {"neck": ("long", "short"), "body": ("round", "square"), "cap": (True, False)},
        bottle_sample,
        bottle_build,
        heldout=({"body": "square", "neck": "long", "cap": False}, {"body": "round", "neck": "short", "cap": True}),
    )
)
_register(
    Family(
        "vase",
        {"handles": (0, 2), "shape": ("round", "slender")},
        vase_sample,
        vase_build,
        heldout=({"handles": 2, "shape": "slender"},),
        ratio_attr="shape",
        ratio_classes={"round": {"H/W": (0.95, 1.6)}, "slender": {"H/W": (1.8, 3.4)}},
    )
)
_register(
    Family(
        "lamp",
        {"size": ("tall", "short"), "shade": ("cone", "cylinder"), "base": ("round", "square")},
        lamp_sample,
        lamp_build,
        heldout=(
            {"shade": "cylinder", "base": "square", "size": "tall"},
            {"shade": "cone", "base": "round", "size": "short"},
        ),
        ratio_attr="size",
        ratio_classes={"tall": {"H/W": (2.1, 3.6)}, "short": {"H/W": (0.95, 1.8)}},
    )
)
_register(
    Family(
        "tree",
        {"crown": ("single", "cluster"), "size": ("tall", "short")},
        tree_sample,
        tree_build,
        heldout=({"crown": "cluster", "size": "short"},),
        ratio_attr="size",
        ratio_classes={"tall": {"H/W": (1.5, 2.7)}, "short": {"H/W": (0.8, 1.3)}},
    )
)
_register(
    Family(
        "pine_tree",
        {"tiers": (2, 3, 4), "size": ("tall", "short")},
        pine_sample,
        pine_build,
        heldout=({"tiers": 4, "size": "short"},),
        ratio_attr="size",
        ratio_classes={"tall": {"H/W": (1.85, 2.7)}, "short": {"H/W": (1.0, 1.45)}},
    )
)
_register(
    Family(
        "mushroom",
        {"count": (1, 2, 3), "cap": ("dome", "flat")},
        mushroom_sample,
        mushroom_build,
        heldout=({"count": 3, "cap": "flat"},),
    )
)
_register(
    Family(
        "cactus",
        {"arms": (1, 2, 3), "pot": (True, False)},
        cactus_sample,
        cactus_build,
        heldout=({"arms": 3, "pot": True},),
    )
)
_register(
    Family(
        "snowman",
        {"balls": (2, 3), "hat": (True, False), "arms": (True, False)},
        snowman_sample,
        snowman_build,
        heldout=({"balls": 2, "arms": True, "hat": True}, {"balls": 3, "arms": False, "hat": False}),
    )
)
_register(
    Family(
        "house",
        {"windows": (1, 2, 3, 4), "roof": ("gable", "flat"), "chimney": (True, False)},
        house_sample,
        house_build,
        heldout=({"windows": 3, "roof": "flat"}, {"windows": 1, "chimney": True, "roof": "gable"}),
    )
)
_register(
    Family(
        "tower",
        {"tiers": (2, 3, 4), "top": ("spire", "battlements")},
        tower_sample,
        tower_build,
        heldout=({"tiers": 4, "top": "battlements"},),
    )
)
_register(
    Family(
        "arch",
        {"openings": (1, 2, 3), "size": ("tall", "wide")},
        arch_sample,
        arch_build,
        heldout=({"openings": 2, "size": "tall"},),
        ratio_attr="size",
        ratio_classes={"tall": {"H/bay": (1.1, 2.4)}, "wide": {"H/bay": (0.45, 0.95)}},
    )
)
_register(
    Family(
        "stairs",
        {"steps": (3, 4, 5, 6, 7, 8), "railing": (True, False), "size": ("wide", "narrow")},
        stairs_sample,
        stairs_build,
        heldout=({"steps": 5, "railing": True}, {"steps": 8, "size": "narrow"}),
        ratio_attr="size",
        ratio_classes={"wide": {"W/D": (0.85, 1.3)}, "narrow": {"W/D": (0.3, 0.55)}},
    )
)
_register(
    Family(
        "ring",
        {"gem": (True, False), "band": ("thin", "thick")},
        ring_sample,
        ring_build,
        heldout=({"gem": True, "band": "thick"},),
    )
)
_register(
    Family(
        "rocket",
        {"fins": (3, 4), "boosters": (True, False)},
        rocket_sample,
        rocket_build,
        heldout=({"fins": 3, "boosters": True},),
    )
)
_register(
    Family(
        "car",
        {"style": ("sedan", "pickup", "van"), "spoiler": (True, False)},
        car_sample,
        car_build,
        heldout=({"style": "pickup", "spoiler": True},),
    )
)
_register(
    Family(
        "ladder",
        {"rungs": (3, 4, 5, 6, 7, 8), "size": ("tall", "short")},
        ladder_sample,
        ladder_build,
        heldout=({"rungs": 6, "size": "short"}, {"rungs": 3, "size": "tall"}),
        ratio_attr="size",
        ratio_classes={"tall": {"H/W": (2.9, 4.1)}, "short": {"H/W": (1.4, 2.0)}},
    )
)
_register(
    Family(
        "fence",
        {"posts": (3, 4, 5, 6, 7), "rails": (1, 2, 3)},
        fence_sample,
        fence_build,
        heldout=({"posts": 5, "rails": 2}, {"posts": 7, "rails": 1}),
    )
)
_register(
    Family(
        "windmill",
        {"blades": (3, 4, 6), "roof": ("cone", "dome")},
        windmill_sample,
        windmill_build,
        heldout=({"blades": 6, "roof": "dome"},),
    )
)

FAMILY_NAMES: tuple[str, ...] = tuple(FAMILIES)


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown family {name!r}; known: {', '.join(FAMILY_NAMES)}") from None
