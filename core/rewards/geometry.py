"""Rewards that need no model weights: is the sample one sound, solid object, as many pieces as
the prompt asks for, whose six views agree with each other?

Why: learned rewards (HPS, VLM judges) score pictures, and a policy can please them with things
that are not usable objects — a cloud of floating specks, a paper-thin billboard, a grid filled
to a blob, views that no single 3D shape could cast. These checks cannot be fooled that way, and
they let training run where no judge is served. They are cheap: numpy/scipy on the 64³ grid,
the mesh's index arrays and the rendered masks (16 samples in well under a second on one core,
rendering excluded).

Every reward here has ``sub_scores = 1`` and ``value_range = (0, 1)``; 1 is good. A sample
without the input a reward reads (no mesh, no grid, no views) is *missing*, never 0.

=====================  ==========================================================  ==========
name                   value                                                       reads
=====================  ==========================================================  ==========
geometry.watertight    1 if closed, manifold, consistently wound with positive      mesh
                       volume; else ``partial_credit`` × fraction of edges shared
                       by exactly two faces
geometry.single_part   count of substantial connected parts vs the count the        grid, else
                       prompt asks for (1 unless it names several), times a         mesh
                       penalty for floating specks
geometry.fill          1 while the grid's occupied fraction is in a sane band,      grid
                       smooth falloff to 0 for empty / near-full grids
geometry.not_flat      share of the filled solid more than two voxels deep          grid
                       (0 for a sheet or a leaked open surface), ramped to 1
geometry.silhouette    how much of each view's silhouette the visual hull of all    views
                       six views explains (1: one 3D shape casts all six)
=====================  ==========================================================  ==========

Grids are the core's convention (``ar3d.core.mesh``): bool [64, 64, 64], a surface shell,
[x, y, z], z up. Measured on the procedural families (``ar3d.procedural``, 2–3 samples of each
of the 25): shell fraction 0.75–9.5 % (median 2.6 %), one 26-connected part each except the
"two mushrooms" family (2 parts, the smaller ~24 % of the volume), and 18–89 % of the filled
solid survives one erosion (fences and ladders lowest).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from scipy import ndimage

from .base import RewardBatch, SampleScore, missing_all

__all__ = [
    "WatertightConfig",
    "PartsConfig",
    "FillConfig",
    "NotFlatConfig",
    "SilhouetteConfig",
    "GeometryConfig",
    "PartCount",
    "expected_parts",
    "Watertight",
    "SinglePart",
    "FillFraction",
    "NotFlat",
    "SilhouetteConsistency",
    "geometry_rewards",
]


# ---------------------------------------------------------------------------------------------
# configs


@dataclass(frozen=True)
class WatertightConfig:
    partial_credit: float = 0.5
    """Most a mesh that is not a closed, consistently wound volume can score: it gets
    ``partial_credit × (fraction of edges shared by exactly two faces)``. Half, so that a
    nearly-closed mesh (one pinhole in 40k faces) still sits clearly below every sound one."""

    def __post_init__(self):
        if not 0.0 <= self.partial_credit < 1.0:
            raise ValueError(f"partial_credit must be in [0, 1), got {self.partial_credit}")


@dataclass(frozen=True)
class PartsConfig:
    connectivity: int = 26
    """Voxel adjacency for parts: 26 (faces, edges or corners touch) or 6 (faces only). 26,
    because a surface voxelised at 64³ is only 26-connected along thin diagonal parts (a
    chair's slanted back leg), and because the core drops dust by 26-connected pieces too."""

    closing_iterations: int = 1
    """Morphological closing (3×3×3) before the interior is filled, as ``MeshConfig`` does,
    so parts are the pieces of the mesh that ``occupancy_to_mesh`` would make (a one-voxel gap
    is bridged there too) and volumes are solid volumes, not shell areas."""

    min_part_volume: float = 0.01
    """A component with at least this share of the total solid volume is a part."""

    min_part_extent: float = 0.2
    """…and so is one whose longest bounding-box side is at least this fraction of the whole
    object's longest side: a detached chair leg is ~0.3 % of the volume but clearly a part."""

    speck_penalty: float = 10.0
    """Components that are neither are specks: they do not count as parts, and the score is
    multiplied by ``max(0, 1 - speck_penalty × their volume share)`` (1 % of the volume in
    specks costs 10 %)."""

    count_sharpness: float = 2.0
    """Wrong part counts score ``(min(n, k) / max(n, k)) ** count_sharpness`` for n parts when
    k are expected: 2 parts for "a chair" → 0.25, 2 for "three chairs" → 0.44."""

    def __post_init__(self):
        if self.connectivity not in (6, 26):
            raise ValueError(f"connectivity must be 6 or 26, got {self.connectivity}")
        if self.closing_iterations < 0 or self.speck_penalty < 0 or self.count_sharpness <= 0:
            raise ValueError("closing_iterations and speck_penalty must be >= 0, count_sharpness > 0")
        if not 0.0 < self.min_part_volume <= 1.0 or not 0.0 < self.min_part_extent <= 1.0:
            raise ValueError("min_part_volume and min_part_extent must be in (0, 1]")


@dataclass(frozen=True)
class FillConfig:
    low: float = 0.002
    """Below this occupied fraction of the grid (0.2 % = 524 of 262,144 voxels, the shell of a
    64×3×3 stick) the score falls off. Procedural shells: 0.75 % (a fence) at the least."""

    high: float = 0.2
    """Above this it falls off. A shell fills far less (a box spanning the grid ~9 %, the
    busiest procedural shell 9.5 %); 20 % means the decoder is filling volume, not surface."""

    empty_at: float = 0.0002
    """Score 0 at and below this fraction (52 voxels: dust). The falloff from ``low`` is a
    smoothstep in log-fraction, so it is 0.5 at the geometric mean of the two."""

    full_at: float = 0.6
    """Score 0 at and above this fraction; smoothstep in fraction from ``high``. (The core
    refuses to mesh grids above 90 %.)"""

    def __post_init__(self):
        if not 0.0 < self.empty_at < self.low <= self.high < self.full_at <= 1.0:
            raise ValueError("need 0 < empty_at < low <= high < full_at <= 1")


@dataclass(frozen=True)
class NotFlatConfig:
    closing_iterations: int = 1
    """As ``PartsConfig.closing_iterations``: the solid is the one the mesh would enclose."""

    ramp: float = 0.1
    """The score is ``smoothstep(core / ramp)`` where ``core`` is the share of the filled solid
    that survives one 6-connected erosion (voxels more than one voxel from the outside). A sheet
    one or two voxels thick, or a shell whose fill leaked, has core 0; the thinnest procedural
    objects (fences, ladders: 4-voxel posts) have 0.18–0.25, furniture 0.33–0.8."""

    def __post_init__(self):
        if self.closing_iterations < 0 or not 0.0 < self.ramp <= 1.0:
            raise ValueError("closing_iterations must be >= 0 and ramp in (0, 1]")


@dataclass(frozen=True)
class SilhouetteConfig:
    radius: float = 2.0
    """Camera distance the views were rendered from (``RenderConfig.radius``)."""

    fov_deg: float = 40.0
    """Horizontal field of view of the views (``RenderConfig.fov_deg``)."""

    half_extent: float = 0.55
    """The visual hull is carved in the cube [-h, h]³. The renderer normalises the object into
    [-0.5, 0.5]³ (``RenderConfig.normalize``, on by default); the margin absorbs rounding."""

    alpha_threshold: int = 128
    """A pixel is object where its (work-resolution) coverage is at least this alpha, the
    renderer's own mask rule."""

    work_resolution: int = 64
    """Masks are box-filtered down by an integer factor to at most this side before carving;
    the carving lattice is sized so that neighbouring points project less than
    ``lattice_spacing_px`` apart (64 px → a 79³ lattice)."""

    lattice_spacing_px: float = 0.85
    """Lattice cells project at most this many work pixels wide (at the nearest depth), so the
    hull resolves what the masks do."""

    carve_dilation: int = 1
    """Masks are dilated by this many (work-resolution) pixels for carving, so that the hull's
    discretisation does not eat thin parts; consistent views then score ~1."""

    aggregate: str = "min"
    """How per-view scores combine: "min" (one inconsistent view sinks the sample; default) or
    "mean"."""

    def __post_init__(self):
        if self.radius <= 0 or not 0.0 < self.fov_deg < 180.0 or self.half_extent <= 0:
            raise ValueError("radius and half_extent must be > 0 and fov_deg in (0, 180)")
        if self.radius <= self.half_extent * math.sqrt(3.0):
            raise ValueError("the cameras must lie outside the carving cube (radius > half_extent·√3)")
        if not 0 < self.alpha_threshold <= 255 or self.work_resolution < 8 or self.carve_dilation < 0:
            raise ValueError("alpha_threshold must be in (0, 255], work_resolution >= 8, carve_dilation >= 0")
        if not 0.1 <= self.lattice_spacing_px < 1.0:
            raise ValueError("lattice_spacing_px must be in [0.1, 1)")
        if self.aggregate not in ("min", "mean"):
            raise ValueError(f"aggregate must be 'min' or 'mean', got {self.aggregate!r}")


@dataclass(frozen=True)
class GeometryConfig:
    """All geometry rewards' settings, for ``geometry_rewards``."""

    watertight: WatertightConfig = field(default_factory=WatertightConfig)
    parts: PartsConfig = field(default_factory=PartsConfig)
    fill: FillConfig = field(default_factory=FillConfig)
    not_flat: NotFlatConfig = field(default_factory=NotFlatConfig)
    silhouette: SilhouetteConfig = field(default_factory=SilhouetteConfig)


# ---------------------------------------------------------------------------------------------
# shared helpers


def _smoothstep(t: float) -> float:
    t = min(1.0, max(0.0, float(t)))
    return t * t * (3.0 - 2.0 * t)


def _grid(batch: RewardBatch, i: int) -> np.ndarray | None:
    if batch.occupancy is None or batch.occupancy[i] is None:
        return None
    from ..mesh import _as_bool_grid  # the core's one reading of numpy/torch/0-1 grids

    return _as_bool_grid(batch.occupancy[i])


def _mesh(batch: RewardBatch, i: int):
    if batch.meshes is None or batch.meshes[i] is None:
        return None
    import trimesh

    mesh = batch.meshes[i]
    if isinstance(mesh, trimesh.Scene):
        mesh = mesh.to_mesh()
    if not isinstance(mesh, trimesh.Trimesh):
        raise TypeError(f"expected a trimesh.Trimesh, got {type(mesh).__name__}")
    return mesh


_SOLIDS: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
_SOLID_CACHE_SIZE = 64


def _morph(a: np.ndarray, grow: bool) -> np.ndarray:
    """One dilation (grow) or erosion by the 3×3×3 cube, as three separable 1-D passes (4×
    faster than scipy's 27-neighbour structure). Outside the array counts as empty."""
    op = np.logical_or if grow else np.logical_and
    for ax in range(3):
        b = a.copy()
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(1, None), slice(None, -1)
        op(b[tuple(lo)], a[tuple(hi)], out=b[tuple(lo)])
        op(b[tuple(hi)], a[tuple(lo)], out=b[tuple(hi)])
        if not grow:
            edge = [slice(None)] * 3
            for end in (0, -1):
                edge[ax] = end
                b[tuple(edge)] = False
        a = b
    return a


def _erode6(a: np.ndarray) -> np.ndarray:
    """Erosion by the 6-neighbour cross (scipy's default structure); outside counts as empty."""
    out = a.copy()
    for ax in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(1, None), slice(None, -1)
        out[tuple(lo)] &= a[tuple(hi)]
        out[tuple(hi)] &= a[tuple(lo)]
        for end in (0, -1):
            edge = [slice(None)] * 3
            edge[ax] = end
            out[tuple(edge)] = False
    return out


_SOLIDS: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
_SOLID_CACHE_SIZE = 64


def _solid(grid: np.ndarray, closing_iterations: int) -> np.ndarray:
    """The solid ``occupancy_to_mesh`` would enclose (closing by the 3×3×3 cube, then enclosed
    cavities filled), cropped to the occupied box plus an empty margin. Cached by content:
    several rewards read the same grid."""
    key = (hashlib.blake2b(np.packbits(grid).tobytes(), digest_size=16).digest(), grid.shape, closing_iterations)
    hit = _SOLIDS.get(key)
    if hit is not None:
        _SOLIDS.move_to_end(key)
        return hit
    if not grid.any():
        solid = np.zeros((1, 1, 1), bool)
    else:
        idx = np.argwhere(grid)
        lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
        shell = np.pad(grid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], closing_iterations + 1)
        closed = shell
        for _ in range(closing_iterations):
            closed = _morph(closed, grow=True)
        for _ in range(closing_iterations):
            closed = _morph(closed, grow=False)
        # binary_fill_holes, faster: the margin makes all outside space one 6-connected piece
        outside, _ = ndimage.label(~closed)
        solid = (outside != outside[0, 0, 0]) | shell
    solid.setflags(write=False)
    _SOLIDS[key] = solid
    if len(_SOLIDS) > _SOLID_CACHE_SIZE:
        _SOLIDS.popitem(last=False)
    return solid


def _per_sample(batch: RewardBatch, fn: Callable[[int], SampleScore]) -> list[SampleScore]:
    """Run ``fn`` per sample; a sample whose input is malformed is missing, not a crash."""
    out = []
    for i in range(len(batch)):
        try:
            out.append(fn(i))
        except (TypeError, ValueError) as e:
            out.append(SampleScore.fail(f"unreadable input: {e}"))
    return out


# ---------------------------------------------------------------------------------------------
# watertight


class Watertight:
    """Is the mesh a closed, manifold, consistently wound solid?

    Checked on the face index arrays (vertices are matched by index, as trimesh does: a mesh
    loaded with ``process=False`` and unmerged vertices is not closed):

    * closed: every undirected edge is shared by exactly two faces;
    * consistently wound: no directed edge occurs twice (neighbours traverse their shared edge
      in opposite directions);
    * positive volume (outward normals).

    Value 1 when all three hold, else ``partial_credit × two_face_edge_fraction``; 0 for a mesh
    without faces. ``occupancy_to_mesh`` meshes always score 1: this guards meshes from other
    sources (a judge-pleasing open billboard, a decimation gone wrong).
    """

    name = "geometry.watertight"
    sub_scores = 1
    value_range = (0.0, 1.0)
    needs = frozenset({"meshes"})

    def __init__(self, config: WatertightConfig | None = None):
        self.config = config or WatertightConfig()

    def score(self, batch: RewardBatch) -> list[SampleScore]:
        if batch.meshes is None:
            return missing_all(batch, "no meshes in the batch")
        return _per_sample(batch, lambda i: self._one(batch, i))

    def _one(self, batch: RewardBatch, i: int) -> SampleScore:
        mesh = _mesh(batch, i)
        if mesh is None:
            return SampleScore.fail("no mesh for this sample")
        faces = np.asarray(mesh.faces, dtype=np.int64)
        if len(faces) == 0:
            return SampleScore(0.0, {"faces": 0, "reason": "mesh has no faces"})
        nv = int(faces.max()) + 1
        directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
        undirected = np.sort(directed, axis=1)
        _, counts = np.unique(undirected[:, 0] * nv + undirected[:, 1], return_counts=True)
        two_face = float(np.mean(counts == 2))
        closed = bool(np.all(counts == 2))
        dkeys = directed[:, 0] * nv + directed[:, 1]
        consistent = len(np.unique(dkeys)) == len(dkeys)
        tri = np.asarray(mesh.vertices, dtype=np.float64)[faces]
        volume = float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)
        details = {
            "faces": int(len(faces)),
            "edges": int(len(counts)),
            "two_face_edge_fraction": two_face,
            "boundary_edges": int(np.sum(counts == 1)),
            "nonmanifold_edges": int(np.sum(counts > 2)),
            "winding_consistent": consistent,
            "volume": volume,
        }
        if closed and consistent and volume > 0:
            return SampleScore(1.0, details)
        failed = [n for n, ok in (("closed", closed), ("winding", consistent), ("positive volume", volume > 0)) if not ok]
        details["failed"] = failed
        return SampleScore(self.config.partial_credit * two_face, details)


# ---------------------------------------------------------------------------------------------
# part count: how many objects does the prompt ask for?


@dataclass(frozen=True)
class PartCount:
    """How many separate objects a prompt asks for: ``lo``..``hi`` (None: no upper bound)."""

    lo: int
    hi: int | None
    reason: str = ""

    def contains(self, n: int) -> bool:
        return n >= self.lo and (self.hi is None or n <= self.hi)


_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
}  # fmt: skip
# "N of them" collectives whose members are separate (set of bowls) or may touch (stack of plates).
_SEVERAL = {"several", "multiple", "many", "various", "assorted", "numerous", "some", "few"}
_SEPARATE_GROUPS = {"set", "group", "collection", "row", "line", "cluster", "bunch", "family", "herd", "flock", "pack", "team"}
_TOUCHING_GROUPS = {"stack", "pile", "heap", "bundle", "tower"}
# Nouns that are plural in form but one object ("a pair of scissors" is one piece).
_PLURALIA_TANTUM = {
    "scissors", "glasses", "eyeglasses", "sunglasses", "spectacles", "goggles", "binoculars",
    "pants", "trousers", "jeans", "shorts", "leggings", "tights", "overalls", "pajamas",
    "pyjamas", "pliers", "tongs", "tweezers", "clippers", "shears", "headphones", "earphones",
    "earbuds", "stairs", "steps", "gallows", "barracks", "headquarters", "bellows", "news",
}  # fmt: skip
_IRREGULAR_PLURALS = {"people", "men", "women", "children", "mice", "geese", "teeth", "feet", "dice", "oxen", "fish", "sheep", "deer"}
# Words that end the phrase naming the object(s): what follows describes them or their setting.
_HEAD_END = {
    "with", "without", "on", "in", "inside", "under", "over", "above", "below", "beside", "next",
    "near", "behind", "at", "by", "for", "from", "to", "into", "made", "having", "has", "that",
    "which", "who", "whose", "where", "featuring", "holding", "carrying", "wearing", "standing",
    "sitting", "topped", "covered", "containing", "filled", "like", "against", "atop", "around",
    "growing", "lying", "floating", "hanging", "resting", "placed", "arranged",
}  # fmt: skip
_DETERMINERS = {"a", "an", "one", "the", "another", "some", "several", "pair", "couple", "set"}
_TOKEN = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*|[,.;:!?()\"]")


_NOT_PLURAL = {"its", "this", "was", "has", "does", "his", "hers", "ours", "yours", "theirs", "as", "always", "perhaps", "across", "towards", "sometimes", "less"}


def _is_plural(word: str) -> bool:
    if word in _IRREGULAR_PLURALS or word in _PLURALIA_TANTUM:
        return True
    if word in _NOT_PLURAL:
        return False
    return len(word) > 2 and word.endswith("s") and not word.endswith(("ss", "us", "is"))


def _number(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    return _NUMBERS.get(word)


def _conjuncts(head: list[str]) -> list[list[str]]:
    """Split at "and"/"plus" only where a new noun phrase starts ("a table and two chairs",
    not "a black and white cat")."""
    out, cur = [], []
    for j, w in enumerate(head):
        nxt = head[j + 1] if j + 1 < len(head) else ""
        if w in ("and", "plus") and cur and (nxt in _DETERMINERS or _number(nxt) is not None or nxt in _SEVERAL):
            out.append(cur)
            cur = []
        else:
            cur.append(w)
    if cur:
        out.append(cur)
    return out


def _count_phrase(words: list[str]) -> tuple[int, int | None]:
    """(lo, hi) objects named by one noun phrase. A quantifier counts when a plural noun follows
    it within a few words (adjectives between: "two dome-capped mushrooms")."""
    for j, w in enumerate(words):
        nxt = words[j + 1] if j + 1 < len(words) else ""
        after = words[j + 1 : j + 5]
        plural = next((x for x in after if _is_plural(x)), None)
        if plural is None:
            continue
        tantum = plural in _PLURALIA_TANTUM
        later = [m for m in map(_number, words[j + 2 :]) if m]
        n = _number(w)
        if n:
            if nxt == "pairs":
                return (n, n) if tantum else (2 * n, 2 * n)
            if nxt == "dozen":
                return 12 * n, 12 * n
            return n, n
        if w == "dozen":
            return 12, 12
        if w in ("pair", "couple") and nxt == "of":
            if tantum:  # a pair of scissors: one object
                return 1, 1
            return (later[0], later[0]) if later else (2, 2)
        if w == "trio" and nxt == "of":
            return 3, 3
        if w in _SEPARATE_GROUPS and nxt == "of":
            return (later[0], later[0]) if later else (2, None)
        if w in _TOUCHING_GROUPS and nxt == "of":
            return 1, None
        if w in _SEVERAL:
            return 2, None
    noun = words[-1]
    if _is_plural(noun) and noun not in _PLURALIA_TANTUM:
        return 1, None  # a bare plural ("chess pieces"): no opinion on the count
    return 1, 1


def expected_parts(prompt: str) -> PartCount:
    """The number of separate objects ``prompt`` asks for; 1 unless it names several.

    Reads only the phrase naming the object(s) — after any "label:" and up to the first
    punctuation or word such as "with", "on", "made", "that", "growing" — so counts of attributes ("a chair with four legs", "a tree
    made of three cones") are not counts of objects. In that phrase a number (word or digit)
    before a plural noun counts ("two mugs", "3 cubes"; "a 3-legged stool" and "a 3D model of
    a vase" do not), as do "a pair/couple of", "a dozen", "a set/group/row of" (2 or more, or
    the number given), "several/many/some" (2 or more); "a stack/pile of" may touch (1 or
    more). Phrases joined by "and" add up ("a table and two chairs": 3). Bare plurals ("chess
    pieces") give 1 or more; plural-form single objects ("a pair of scissors", "stairs") give 1.
    """
    tokens = _TOKEN.findall(prompt.lower().replace("&", " and "))
    head: list[str] = []
    for t in tokens:
        if t == ":":  # "3D shape: a pair of mugs" — the label before a colon names no object
            head = []
            continue
        if t in _HEAD_END or not t[0].isalnum():
            if head:
                break
            continue
        head.append(t)
    if not head:
        return PartCount(1, 1, "no object phrase found")
    lo, hi = 0, 0
    for words in _conjuncts(head):
        a, b = _count_phrase(words)
        lo += a
        hi = None if hi is None or b is None else hi + b
    lo = max(lo, 1)
    return PartCount(lo, hi, " ".join(head))


def _count_score(n: int, expected: PartCount, sharpness: float) -> float:
    if n <= 0:
        return 0.0
    if expected.contains(n):
        return 1.0
    target = expected.lo if n < expected.lo else expected.hi
    return (min(n, target) / max(n, target)) ** sharpness


# ---------------------------------------------------------------------------------------------
# single part


class SinglePart:
    """One object (or as many as the prompt asks for), without floating specks.

    Components are 26-connected (configurable) pieces of the filled solid of the grid (see
    ``PartsConfig``), or, without a grid, the mesh's connected pieces (volume of watertight
    pieces, else of their convex hull). A component is a *part* if it holds ``min_part_volume``
    of the volume or spans ``min_part_extent`` of the object's longest side; the rest are
    specks. Value = count score (1 when the number of parts is what ``expected_parts(prompt)``
    allows, ``(min/max) ** count_sharpness`` otherwise, 0 with no parts) ×
    ``max(0, 1 - speck_penalty × speck volume share)``.

    ``expected_parts`` can be replaced (any ``prompt -> PartCount``), e.g. by counts read off the
    step-1 plan.
    """

    name = "geometry.single_part"
    sub_scores = 1
    value_range = (0.0, 1.0)
    needs = frozenset({"occupancy", "meshes"})

    def __init__(self, config: PartsConfig | None = None, expected_parts: Callable[[str], PartCount] = expected_parts):
        self.config = config or PartsConfig()
        self.expected_parts = expected_parts

    def score(self, batch: RewardBatch) -> list[SampleScore]:
        if batch.occupancy is None and batch.meshes is None:
            return missing_all(batch, "no occupancy grids or meshes in the batch")
        return _per_sample(batch, lambda i: self._one(batch, i))

    def _components(self, batch: RewardBatch, i: int) -> tuple[np.ndarray, np.ndarray, float, str] | None:
        """Volumes and longest bounding-box sides per component, the whole object's longest
        side, and where they came from."""
        grid = _grid(batch, i)
        if grid is not None:
            solid = _solid(grid, self.config.closing_iterations)
            if not solid.any():
                return np.zeros(0), np.zeros(0), 0.0, "occupancy"
            structure = ndimage.generate_binary_structure(3, 3 if self.config.connectivity == 26 else 1)
            labels, n = ndimage.label(solid, structure)
            volumes = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(np.float64)
            sides = np.array([max(s.stop - s.start for s in sl) for sl in ndimage.find_objects(labels)], np.float64)
            idx = np.argwhere(solid)
            return volumes, sides, float((idx.max(axis=0) - idx.min(axis=0) + 1).max()), "occupancy"
        mesh = _mesh(batch, i)
        if mesh is None:
            return None
        if len(mesh.faces) == 0:
            return np.zeros(0), np.zeros(0), 0.0, "mesh"
        pieces = mesh.split(only_watertight=False)
        volumes = np.array([abs(p.volume) if p.is_watertight else p.convex_hull.volume for p in pieces], np.float64)
        sides = np.array([float(np.ptp(p.vertices, axis=0).max()) for p in pieces], np.float64)
        return volumes, sides, float(np.ptp(mesh.vertices[mesh.faces.ravel()], axis=0).max()), "mesh"

    def _one(self, batch: RewardBatch, i: int) -> SampleScore:
        comps = self._components(batch, i)
        if comps is None:
            return SampleScore.fail("no occupancy grid or mesh for this sample")
        volumes, sides, whole, source = comps
        cfg = self.config
        expected = self.expected_parts(batch.prompts[i])
        details: dict[str, Any] = {"source": source, "expected": [expected.lo, expected.hi], "expected_from": expected.reason}
        if len(volumes) == 0 or volumes.sum() <= 0:
            return SampleScore(0.0, {**details, "parts": 0, "reason": "nothing occupied"})
        share = volumes / volumes.sum()
        part = (share >= cfg.min_part_volume) | (sides >= cfg.min_part_extent * whole)
        n = int(part.sum())
        speck_share = float(share[~part].sum())
        count = _count_score(n, expected, cfg.count_sharpness)
        speck = max(0.0, 1.0 - cfg.speck_penalty * speck_share)
        details.update(
            parts=n,
            part_shares=[round(float(s), 4) for s in np.sort(share[part])[::-1][:8]],
            specks=int((~part).sum()),
            speck_share=speck_share,
            count_score=count,
            speck_factor=speck,
            connectivity=cfg.connectivity if source == "occupancy" else "mesh",
        )
        return SampleScore(count * speck, details)


# ---------------------------------------------------------------------------------------------
# fill fraction


def _band_score(f: float, cfg: FillConfig) -> float:
    if f <= cfg.empty_at or f >= cfg.full_at:
        return 0.0
    if f < cfg.low:
        return _smoothstep(math.log(f / cfg.empty_at) / math.log(cfg.low / cfg.empty_at))
    if f > cfg.high:
        return _smoothstep((cfg.full_at - f) / (cfg.full_at - cfg.high))
    return 1.0


class FillFraction:
    """The grid's occupied-voxel fraction lies in a sane band (``FillConfig``): 0 for an
    empty grid or one filled towards a blob, 1 inside the band, smooth in between."""

    name = "geometry.fill"
    sub_scores = 1
    value_range = (0.0, 1.0)
    needs = frozenset({"occupancy"})

    def __init__(self, config: FillConfig | None = None):
        self.config = config or FillConfig()

    def score(self, batch: RewardBatch) -> list[SampleScore]:
        if batch.occupancy is None:
            return missing_all(batch, "no occupancy grids in the batch")
        return _per_sample(batch, self._one_of(batch))

    def _one_of(self, batch: RewardBatch):
        def one(i: int) -> SampleScore:
            grid = _grid(batch, i)
            if grid is None:
                return SampleScore.fail("no occupancy grid for this sample")
            f = float(grid.mean())
            band = [self.config.low, self.config.high]
            return SampleScore(_band_score(f, self.config), {"fraction": f, "voxels": int(grid.sum()), "band": band})

        return one


# ---------------------------------------------------------------------------------------------
# not flat


class NotFlat:
    """Not a sheet: part of the object has depth.

    ``core`` = the share of the filled solid (``_solid``: closing, interior fill) that survives
    one 6-connected erosion. A flat slab one or two voxels thick, a bent single surface, or a
    shell with a hole the fill leaked through all have core 0 — they render as paper-thin
    billboards that image rewards may still like. Value ``smoothstep(core / ramp)``.
    """

    name = "geometry.not_flat"
    sub_scores = 1
    value_range = (0.0, 1.0)
    needs = frozenset({"occupancy"})

    def __init__(self, config: NotFlatConfig | None = None):
        self.config = config or NotFlatConfig()

    def score(self, batch: RewardBatch) -> list[SampleScore]:
        if batch.occupancy is None:
            return missing_all(batch, "no occupancy grids in the batch")
        return _per_sample(batch, lambda i: self._one(batch, i))

    def _one(self, batch: RewardBatch, i: int) -> SampleScore:
        grid = _grid(batch, i)
        if grid is None:
            return SampleScore.fail("no occupancy grid for this sample")
        solid = _solid(grid, self.config.closing_iterations)
        total = int(solid.sum())
        if total == 0:
            return SampleScore(0.0, {"core": 0.0, "solid_voxels": 0, "reason": "nothing occupied"})
        core = float(_erode6(solid).sum()) / total
        return SampleScore(_smoothstep(core / self.config.ramp), {"core": core, "solid_voxels": total})


# ---------------------------------------------------------------------------------------------
# silhouette consistency


class _AxisView:
    """An axis-aligned camera's projection between a lattice of n³ cells over [-h, h]³ and an
    H×W image, precomputed as flat gather indices (the six-view cameras map each world axis to
    one image axis or to depth, so image columns depend only on two lattice indices). Carving
    and reprojection are then one ``take`` each, with no per-sample arithmetic."""

    def __init__(self, w2c: np.ndarray, n: int, h: float, f: float, cx: float, cy: float, shape: tuple[int, int]):
        r, t = w2c[:3, :3], w2c[:3, 3]
        axes = np.argmax(np.abs(r), axis=1)  # world axis of camera right, up, backward
        if len(set(axes.tolist())) != 3 or not np.allclose(np.abs(r[np.arange(3), axes]), 1.0, atol=1e-9):
            raise ValueError("silhouette consistency needs axis-aligned cameras (the six-view layout)")
        a_r, a_u, a_d = (int(a) for a in axes)
        s_r, s_u, s_d = (float(r[k, axes[k]]) for k in range(3))
        H, W = shape
        coords = ((np.arange(n) + 0.5) / n * 2.0 - 1.0) * h
        depth = -(s_d * coords + t[2])  # per depth slice; the camera looks down its -Z
        if not np.all(depth > 0):
            raise ValueError("a camera lies inside the carving cube")

        # cell centre -> pixel, into the mask padded by one False pixel all round
        col = np.floor(cx + f * (s_r * coords[None, :] + t[0]) / depth[:, None])  # [depth, right]
        row = np.floor(cy - f * (s_u * coords[None, :] + t[1]) / depth[:, None])  # [depth, up]
        col = np.clip(col, -1, W).astype(np.intp) + 1
        row = np.clip(row, -1, H).astype(np.intp) + 1
        idx = row[:, :, None] * (W + 2) + col[:, None, :]  # [depth, up, right]
        order = (a_d, a_u, a_r)
        self.carve_idx = np.ascontiguousarray(idx.transpose(tuple(order.index(k) for k in range(3))))

        # pixel centre's ray at each depth slice -> cell, into the hull padded by one False cell
        xr = ((np.arange(W) + 0.5 - cx)[None, :] * depth[:, None] / f - t[0]) / s_r  # [depth, W]
        xu = ((cy - np.arange(H) - 0.5)[None, :] * depth[:, None] / f - t[1]) / s_u  # [depth, H]
        ri = np.clip(np.floor((xr + h) / (2.0 * h) * n), -1, n).astype(np.intp) + 1
        ui = np.clip(np.floor((xu + h) / (2.0 * h) * n), -1, n).astype(np.intp) + 1
        di = np.arange(n, dtype=np.intp) + 1
        stride = [(n + 2) ** 2, n + 2, 1]  # of the padded [x, y, z] hull
        self.proj_idx = (
            (di * stride[a_d])[:, None, None] + (ui * stride[a_u])[:, :, None] + (ri * stride[a_r])[:, None, :]
        )  # [depth, H, W]

    def inside(self, mask: np.ndarray) -> np.ndarray:
        """bool [n, n, n] ([x, y, z]): the cell's centre projects onto ``mask``."""
        return np.pad(mask, 1).ravel().take(self.carve_idx)

    def project(self, padded_hull: np.ndarray) -> np.ndarray:
        """bool [H, W]: the pixel centre's ray meets a hull cell (tested at each depth slice)."""
        return padded_hull.ravel().take(self.proj_idx).any(axis=0)


class SilhouetteConsistency:
    """Could one 3D shape have cast all six silhouettes?

    Each view's object mask (alpha ≥ ``alpha_threshold`` after box-filtering to the work
    resolution) is dilated by ``carve_dilation`` pixels; a lattice over [-h, h]³ is carved to
    the points that project inside every dilated mask (the *visual hull*, with the cameras of
    ``ar3d.headless.views.six_views(radius, fov_deg)`` matched by view name). The hull is then
    projected back: a view's score is the fraction of its mask pixels the hull covers. Views of
    one object score ~1 (the hull contains the object, so it covers every silhouette); a view
    that disagrees with the others carves away what they show, or shows what they carved
    away, and some view's coverage drops. Value: the minimum (or mean, ``aggregate``) over the
    views with object pixels; 0 when no view shows anything.

    Perspective is exact, unlike comparing mirrored opposite views (front/back of a chair differ
    by up to 1.5× in apparent size at radius 2). Assumes the renderer's default framing: the
    object normalised into [-0.5, 0.5]³ and the cameras of ``radius``/``fov_deg``. Needs RGBA
    views (RGB views have no reliable mask: a white object on white is invisible).
    """

    name = "geometry.silhouette"
    sub_scores = 1
    value_range = (0.0, 1.0)
    needs = frozenset({"views"})

    def __init__(self, config: SilhouetteConfig | None = None):
        self.config = config or SilhouetteConfig()
        self._views: dict = {}  # projection tables of the last camera layout (~40 MB at 64 px)

    def score(self, batch: RewardBatch) -> list[SampleScore]:
        if batch.views is None:
            return missing_all(batch, "no rendered views in the batch")
        try:
            cams = self._cameras(batch.view_names)
        except ValueError as e:
            return missing_all(batch, str(e))
        return _per_sample(batch, lambda i: self._one(batch.views[i], cams, batch.view_names))

    def _cameras(self, names: Sequence[str]) -> list[np.ndarray]:
        from ...headless.views import six_views  # numpy only, no bpy

        by_name = {c.name: c for c in six_views(self.config.radius, self.config.fov_deg)}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(f"no camera known for view(s) {unknown}; silhouette consistency knows {sorted(by_name)}")
        return [by_name[n].w2c() for n in names]

    def _masks(self, views: np.ndarray) -> tuple[np.ndarray, int]:
        """Object masks at the work resolution, and the box-filter factor k (work pixel j covers
        original pixels [k j, k (j + 1)))."""
        v = np.asarray(views)
        if v.dtype != np.uint8 or v.ndim != 4 or v.shape[-1] not in (3, 4):
            raise ValueError(f"views must be uint8 [V, H, W, 3|4], got {v.dtype} {v.shape}")
        if v.shape[-1] != 4:
            raise ValueError("views have no alpha channel; silhouettes need RGBA renders")
        a = v[..., 3]
        k = max(1, math.ceil(max(a.shape[1:]) / self.config.work_resolution))
        h, w = a.shape[1] // k, a.shape[2] // k
        cov = a[:, : h * k, : w * k].reshape(len(a), h, k, w, k).sum(axis=4, dtype=np.uint32).sum(axis=2)
        return cov >= self.config.alpha_threshold * k * k, k

    def _one(self, views, w2cs: list[np.ndarray], names: Sequence[str]) -> SampleScore:
        if views is None:
            return SampleScore.fail("no views for this sample")
        masks, k = self._masks(views)
        if len(masks) != len(w2cs):
            raise ValueError(f"{len(masks)} views for {len(w2cs)} view names")
        cfg = self.config
        V, H, W = masks.shape
        full_h, full_w = np.shape(views)[1] / k, np.shape(views)[2] / k  # original pixels, in work pixels
        f = 0.5 * full_w / math.tan(math.radians(cfg.fov_deg) / 2.0)  # at work resolution
        cx, cy = 0.5 * full_w, 0.5 * full_h
        details: dict[str, Any] = {"work_resolution": [H, W]}
        pixels = masks.reshape(V, -1).sum(axis=1)
        if not pixels.any():
            return SampleScore(0.0, {**details, "reason": "no view shows anything"})

        h = cfg.half_extent
        near = cfg.radius - h  # the nearest depth of any lattice cell, for axis-aligned cameras
        n = int(math.ceil(f * 2.0 * h / (near * cfg.lattice_spacing_px)))
        key = (tuple(tuple(m.ravel().round(9)) for m in w2cs), n, h, f, cx, cy, H, W)
        cams = self._views.get(key)
        if cams is None:
            cams = [_AxisView(m, n, h, f, cx, cy, (H, W)) for m in w2cs]
            self._views = {key: cams}  # one layout at a time: a training run renders one way

        carve = masks
        if cfg.carve_dilation:
            st = ndimage.generate_binary_structure(2, 2)
            carve = np.stack([ndimage.binary_dilation(m, st, cfg.carve_dilation) for m in masks])
        hull = np.ones((n, n, n), bool)
        for cam, m in zip(cams, carve):
            hull &= cam.inside(m)

        padded = np.pad(hull, 1)
        per_view = []
        for v in range(V):
            if pixels[v] == 0:
                per_view.append(None)
                continue
            proj = cams[v].project(padded)
            per_view.append(float((proj & masks[v]).sum()) / float(pixels[v]))
        scored = [s for s in per_view if s is not None]
        value = min(scored) if cfg.aggregate == "min" else float(np.mean(scored))
        details.update(
            per_view={name: s for name, s in zip(names, per_view)},
            hull_cells=int(hull.sum()),
            lattice=n,
            empty_views=[name for name, s in zip(names, per_view) if s is None],
        )
        return SampleScore(value, details)


# ---------------------------------------------------------------------------------------------


def geometry_rewards(config: GeometryConfig | None = None) -> list:
    """All five geometry rewards, configured by ``config``."""
    config = config or GeometryConfig()
    return [
        Watertight(config.watertight),
        SinglePart(config.parts),
        FillFraction(config.fill),
        NotFlat(config.not_flat),
        SilhouetteConsistency(config.silhouette),
    ]
