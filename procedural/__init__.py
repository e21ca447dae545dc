"""Procedural 3D shapes with captions and plans: training data for a small offline demo policy.

Twenty-five object families (:mod:`.families`) that people recognise, each with discrete
attributes (counts of legs, steps, shelves, windows …; tall/short/wide classes; parts present or
not) and continuous proportions, built from boolean unions of primitives (:mod:`.geometry`) and
voxelised to the core's 64³ surface-shell convention. Every sample has a caption mentioning all of
its attributes and two Hi-GRPO-style plans (:mod:`.captions`; wording "v2" from :mod:`.wording`
by default, "v1" for the shipped demo model's data; :mod:`.read_caption` reads captions back). A
test split holds back attribute combinations, caption templates and phrasings that training never
sees. :mod:`.dataset` generates and stores
samples; :mod:`.evaluate` judges grids (family by nearest procedural neighbour, attributes read
off the voxels) without sharing anything with the policy; :mod:`.strict` reads the counts a person
would agree with, and :mod:`.quality` judges the mesh's topology (unwanted through-holes, floating
fragments) against the family's. :mod:`.judge` runs all of these on many grids and scores them against
the metadata (the demo model's held-out evaluation).

Quick use::

    from ar3d.procedural import generate_dataset, write_dataset
    write_dataset("train.npz", generate_dataset(10_000, "train", seed=0, workers=2))

or ``python -m ar3d.procedural --n 10000 --split train --out train.npz --workers 2``.
"""

from .dataset import (
    ProceduralDataset,
    Sample,
    generate_dataset,
    iter_samples,
    make_sample,
    read_dataset,
    rebuild_mesh,
    write_dataset,
)
from .evaluate import References, build_references, check_attributes, classify_batch, classify_family
from .families import FAMILIES, FAMILY_NAMES, Family, get_family
from .quality import Quality, QualityConfig, assess, expected_topology
from .strict import STRICT_CHECKERS, check_attributes_strict

__all__ = [
    "FAMILIES",
    "FAMILY_NAMES",
    "Family",
    "get_family",
    "Sample",
    "make_sample",
    "iter_samples",
    "generate_dataset",
    "write_dataset",
    "read_dataset",
    "ProceduralDataset",
    "rebuild_mesh",
    "References",
    "build_references",
    "classify_family",
    "classify_batch",
    "check_attributes",
    "STRICT_CHECKERS",
    "check_attributes_strict",
    "Quality",
    "QualityConfig",
    "assess",
    "expected_topology",
]
