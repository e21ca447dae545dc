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

One module per reward (``watertight``, ``single_part``, ``fill``, ``not_flat``, ``silhouette``:
each with its config), ``part_count`` (``expected_parts``: objects a prompt asks for),
``solid`` (the filled solid of a shell grid) and ``scoring`` (per-sample helpers they share).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .fill import FillConfig, FillFraction
from .not_flat import NotFlat, NotFlatConfig
from .part_count import PartCount, expected_parts
from .silhouette import SilhouetteConfig, SilhouetteConsistency
from .single_part import PartsConfig, SinglePart
from .watertight import Watertight, WatertightConfig

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


@dataclass(frozen=True)
class GeometryConfig:
    """All geometry rewards' settings, for ``geometry_rewards``."""

    watertight: WatertightConfig = field(default_factory=WatertightConfig)
    parts: PartsConfig = field(default_factory=PartsConfig)
    fill: FillConfig = field(default_factory=FillConfig)
    not_flat: NotFlatConfig = field(default_factory=NotFlatConfig)
    silhouette: SilhouetteConfig = field(default_factory=SilhouetteConfig)


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
