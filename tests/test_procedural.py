"""ar3d.procedural: shape families, captions and plans, held-out split, dataset file, judges."""

import json
import re

import numpy as np
import pytest
from ar3d.procedural import captions as C
from ar3d.procedural.mentions import MENTIONS
from ar3d.procedural.dataset import (
    generate_dataset,
    make_sample,
    read_dataset,
    rebuild_mesh,
    unpack_occupancy,
    write_dataset,
)
from ar3d.procedural.evaluate import CHECKERS, build_references, check_attributes, classify_batch, grid_extents
from ar3d.procedural.families import FAMILIES, FAMILY_NAMES
from ar3d.procedural.geometry import voxelize

R = 64


@pytest.fixture(scope="module")
def one_per_family():
    """Sample i of the train stream is family i % F: one of each."""
    return generate_dataset(len(FAMILY_NAMES), "train", seed=123)


@pytest.fixture(scope="module")
def captions_only():
    """Metadata only (no voxels): cheap, so many."""
    return [make_sample(i, split, seed=7, voxels=False) for split in ("train", "test") for i in range(150)]


def test_at_least_twenty_families_with_attributes_and_held_out_combinations():
    assert len(FAMILY_NAMES) >= 20
    for name, fam in FAMILIES.items():
        assert fam.attributes, name
        assert fam.heldout, f"{name} holds out no combination"


def test_every_family_voxelises_to_an_upright_shell_of_reasonable_size(one_per_family):
    assert [s.family for s in one_per_family] == list(FAMILY_NAMES)
    for s in one_per_family:
        g = s.occupancy
        assert g.shape == (R, R, R) and g.dtype == bool
        n = int(g.sum())
        assert 500 < n < 0.2 * R**3, (s.family, n)  # a shell: not empty, nowhere near full
        ext = grid_extents(g)
        assert ext.max() >= R - 1, (s.family, ext)  # the longest side spans the grid
        assert ext.min() >= 3, (s.family, ext)
        # z up: the grid's proportions are the built shape's (W, D, H), not a rotation of them
        shape = FAMILIES[s.family].build(s.params)
        lo, hi = shape.bounds()
        size = hi - lo
        assert abs(lo[2]) <= 0.02 * size.max(), (s.family, lo)  # stands on the floor z = 0
        np.testing.assert_allclose(ext / ext.max(), size / size.max(), atol=2.5 / R, err_msg=s.family)
        # the object touches the bottom of its box with a footprint, and the shell is closed
        assert g[..., np.argwhere(g)[:, 2].min()].sum() >= 4, s.family
        assert s.mesh().is_watertight, s.family


def test_tall_things_are_tall_and_wide_things_wide(one_per_family):
    for s in one_per_family:
        w, d, h = grid_extents(s.occupancy)
        if s.family in ("bottle", "tower", "rocket", "ladder", "lamp", "snowman"):
            assert h > max(w, d), s.family
        if s.family in ("fence", "bench", "car"):
            assert h < max(w, d), s.family


def test_samples_are_deterministic_for_a_seed():
    for i in (0, 7, 19):
        a, b = make_sample(i, "train", seed=5), make_sample(i, "train", seed=5)
        assert a.metadata() == b.metadata()
        assert np.array_equal(a.occupancy, b.occupancy)
    assert make_sample(3, "train", seed=5).metadata() != make_sample(3, "train", seed=6).metadata()


def test_same_dataset_with_workers():
    one = generate_dataset(6, "train", seed=2, workers=1, families=["ring", "fence"])
    two = generate_dataset(6, "train", seed=2, workers=2, families=["ring", "fence"], chunk=2)
    assert [s.metadata() for s in one] == [s.metadata() for s in two]
    assert all(np.array_equal(a.occupancy, b.occupancy) for a, b in zip(one, two))


def test_captions_mention_every_attribute(captions_only):
    """MENTIONS are the v1 wording's patterns; test_procedural_wording.py reads both wordings."""
    v1 = [make_sample(s.index, s.split, seed=s.seed, voxels=False, wording="v1") for s in captions_only]
    for s in v1:
        for attr, value in s.attributes.items():
            assert re.search(MENTIONS[s.family][attr][value], s.caption, re.I), (s.family, attr, value, s.caption)
            # and not a contradicting value of a yes/no or two-way attribute
            for other, pattern in MENTIONS[s.family][attr].items():
                if other != value and isinstance(value, bool):
                    assert not re.search(pattern, s.caption, re.I), (s.family, attr, value, s.caption)
        assert "{" not in s.caption and "  " not in s.caption, s.caption


def test_captions_vary_and_read_naturally(captions_only):
    chairs = {s.caption for s in captions_only if s.family == "chair"}
    assert len(chairs) >= 8
    for fam in FAMILY_NAMES:
        n_templates = len(C.GENERIC_TEMPLATES) + len(C.FAMILY_TEMPLATES[fam])
        assert n_templates >= 6 and len(C.FAMILY_TEMPLATES[fam]) >= 4
    for s in captions_only:
        assert not re.search(r"\ba [aeiou]", s.caption.lower().replace("a one", "")), s.caption
        assert "with with" not in s.caption


def test_plans_have_the_step1_and_step2_lengths(captions_only):
    for s in captions_only:
        n1, n2 = len(s.plan1.split()), len(s.plan2.split())
        assert 15 <= n1 <= 40, (s.family, n1, s.plan1)
        assert 25 <= n2 <= 60, (s.family, n2, s.plan2)
    s = make_sample(0, "train", seed=1, voxels=False)
    assert s.plan1 == make_sample(0, "train", seed=1, voxels=False).plan1


def test_metadata_is_json(captions_only):
    for s in captions_only[:50]:
        m = s.metadata()
        assert json.loads(json.dumps(m)) == m
        assert set(m) >= {"family", "params", "attributes", "caption", "plan1", "plan2", "split", "template"}


def test_held_out_combinations_and_templates_are_disjoint(captions_only):
    for name, fam in FAMILIES.items():
        train, test = fam.split_combos("train"), fam.split_combos("test")
        assert train and test, name
        assert not any(a in train for a in test), name
        for attr, values in fam.attributes.items():  # every value is still learnt, in other combinations
            assert {a[attr] for a in train} == set(values), (name, attr)
        t_train = dict(C.templates(name, "train"))
        t_test = dict(C.templates(name, "test"))
        assert t_train and t_test and not set(t_train) & set(t_test)
        assert not set(t_train.values()) & set(t_test.values())
        assert any(":" in tid for tid in t_test) and any(tid.startswith("g") for tid in t_test)
    for s in captions_only:
        fam = FAMILIES[s.family]
        assert C.is_heldout_template(s.template) == (s.split == "test"), s
        assert s.novel_combo == fam.is_heldout(s.attributes)
        if s.split == "train":
            assert not s.novel_combo
    assert any(s.novel_combo for s in captions_only if s.split == "test")
    assert any(not s.novel_combo for s in captions_only if s.split == "test")


def test_dataset_round_trip(tmp_path, one_per_family):
    samples = one_per_family[:6]
    path = write_dataset(tmp_path / "d.npz", samples)
    assert (tmp_path / "d.jsonl").is_file()
    ds = read_dataset(path)
    assert len(ds) == 6 and ds.resolution == R
    assert ds.packed.shape == (6, R**3 // 8)
    for i, s in enumerate(samples):
        item = ds[i]
        assert np.array_equal(item["occupancy"], s.occupancy)
        assert {k: item[k] for k in s.metadata()} == s.metadata()
    assert np.array_equal(ds.occupancy(slice(0, 3)), np.stack([s.occupancy for s in samples[:3]]))
    back = ds.samples()[2]
    assert back.caption == samples[2].caption and np.array_equal(back.occupancy, samples[2].occupancy)
    assert np.array_equal(unpack_occupancy(ds.packed[4]), samples[4].occupancy)


def test_exact_voxeliser_is_the_core_and_fast_one_is_close():
    for fam in ("fence", "ring"):
        s = make_sample(FAMILY_NAMES.index(fam), "train", seed=4)
        mesh = rebuild_mesh(s.family, s.params)
        ref = voxelize(mesh, method="reference")
        assert np.array_equal(voxelize(mesh, method="exact"), ref)
        iou = (ref & s.occupancy).sum() / (ref | s.occupancy).sum()
        assert iou > 0.9, (fam, iou)


COUNTED = [
    "chair",
    "table",
    "stool",
    "bench",
    "bookshelf",
    "stairs",
    "ladder",
    "fence",
    "house",
    "arch",
    "pine_tree",
    "mushroom",
]


def test_counters_read_the_ground_truth():
    samples = generate_dataset(3 * len(COUNTED), "train", seed=11, families=COUNTED)
    samples += generate_dataset(len(COUNTED), "test", seed=11, families=COUNTED)
    for s in samples:
        read = check_attributes(s.family, s.occupancy)
        assert read, s.family
        for attr, value in read.items():
            assert value == s.attributes[attr], (s.family, attr, s.attributes, read)
    assert set(COUNTED) <= set(CHECKERS)


def test_size_classes_read_from_the_grid(one_per_family):
    for s in one_per_family:
        fam = FAMILIES[s.family]
        if fam.ratio_attr:
            assert check_attributes(s.family, s.occupancy)[fam.ratio_attr] == s.attributes[fam.ratio_attr], s.family


def test_classifier_finds_the_family_of_ground_truth_shapes():
    fams = ["chair", "table", "bookshelf", "mug", "pine_tree", "snowman", "house", "stairs", "car", "windmill"]
    refs = build_references(per_family=6, seed=500, families=fams)
    test = generate_dataset(2 * len(fams), "test", seed=1, families=fams)
    pred, score = classify_batch([s.occupancy for s in test], refs)
    acc = np.mean([p == s.family for p, s in zip(pred, test)])
    assert acc >= 0.9, list(zip(pred, [s.family for s in test]))
    assert (score > 0).all() and (score <= 1).all()


def test_saved_params_rebuild_the_saved_grid(tmp_path, one_per_family):
    path = write_dataset(tmp_path / "d.npz", one_per_family[10:13], jsonl=False)
    ds = read_dataset(path)
    for i in range(len(ds)):
        m = ds.meta[i]
        assert np.array_equal(voxelize(rebuild_mesh(m["family"], m["params"])), ds.occupancy(i)), m["family"]


def test_command_line_writes_a_dataset(tmp_path, capsys):
    from ar3d.procedural.__main__ import main

    assert main(["--n", "3", "--split", "test", "--families", "ring,fence", "--out", str(tmp_path / "x.npz")]) == 0
    ds = read_dataset(tmp_path / "x.npz")
    assert [m["family"] for m in ds.meta] == ["ring", "fence", "ring"]
    assert all(m["split"] == "test" for m in ds.meta)


def test_arch_size_unreadable_without_openings():
    """An arch grid read as having no opening has no bay: its size class is unreadable (None,
    counted wrong), quietly — the RL reward calls this on thousands of generated grids."""
    import warnings

    from ar3d.procedural.evaluate import check_attributes

    g = np.zeros((64, 64, 64), bool)
    g[20:44, 28:36, 0:30] = True  # one solid block standing on the floor: one floor piece
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read = check_attributes("arch", g)
    assert read == {"openings": 0, "size": None}
