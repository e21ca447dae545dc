"""Caption wordings (issue #21): v1 kept byte for byte, v2's variants, the held-out wording list,
and the reader that turns captions and prompts back into a family and attributes."""

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from ar3d.procedural import captions as C
from ar3d.procedural import wording as W
from ar3d.procedural.dataset import make_sample, read_dataset
from ar3d.procedural.families import FAMILIES, FAMILY_NAMES
from ar3d.procedural.read_caption import families_in, read_caption, read_family

FIXTURE = Path(__file__).parent / "fixtures" / "captions_v1.json"


def _captions(wording, split, seed, n):
    """(family, attributes, caption, template id) without building shapes: cheap, so many."""
    out = []
    for i in range(n):
        family = FAMILY_NAMES[i % len(FAMILY_NAMES)]
        rng = np.random.default_rng([seed, 0 if split == "train" else 1, i])
        attrs = FAMILIES[family].sample_attributes(rng, split)
        caption, tid = C.make_caption(family, attrs, rng, split, wording)
        out.append((family, attrs, caption, tid))
    return out


@pytest.fixture(scope="module")
def v2_train():
    return _captions("v2", "train", 1, 5000)


@pytest.fixture(scope="module")
def v2_test():
    return _captions("v2", "test", 2, 2500)


# --- v1: the shipped demo model's data -------------------------------------------------------


def test_v1_captions_are_byte_identical_to_the_shipped_data():
    """The fixture was made by the code before v2 existed (commit 5106628): 200 captions and
    template ids in full, and digests of the first 400 train (seed 1) / 200 test (seed 2) samples'
    captions, templates, plans and attributes — the seeds of the shipped model's data."""
    fx = json.loads(FIXTURE.read_text())
    for r in fx["samples"]:
        s = make_sample(r["index"], r["split"], seed=r["seed"], voxels=False, wording="v1")
        assert (s.family, s.caption, s.template) == (r["family"], r["caption"], r["template"]), r
    for d in fx["digests"]:
        h = hashlib.sha256()
        for i in range(d["n"]):
            s = make_sample(i, d["split"], seed=d["seed"], voxels=False, wording="v1")
            row = [s.caption, s.template, s.plan1, s.plan2, s.attributes]
            h.update(json.dumps(row, sort_keys=True).encode() + b"\n")
        assert h.hexdigest() == d["sha256"], d


def test_wording_changes_the_caption_not_the_shape():
    a = make_sample(7, "train", seed=3, voxels=False, wording="v1")
    b = make_sample(7, "train", seed=3, voxels=False, wording="v2")
    assert a.params == b.params and a.attributes == b.attributes
    assert make_sample(7, "train", seed=3, voxels=False).caption == b.caption  # v2 is the default
    with pytest.raises(ValueError, match="wording must be one of v1, v2"):
        make_sample(0, wording="v3")


def test_command_line_selects_the_wording(tmp_path):
    from ar3d.procedural.__main__ import main

    fx = json.loads(FIXTURE.read_text())
    want = [r["caption"] for r in fx["samples"] if r["seed"] == 1 and r["split"] == "train"][:2]
    assert main(["--n", "2", "--seed", "1", "--wording", "v1", "--out", str(tmp_path / "v1.npz")]) == 0
    assert [m["caption"] for m in read_dataset(tmp_path / "v1.npz").meta] == want
    assert main(["--n", "2", "--seed", "1", "--out", str(tmp_path / "v2.npz")]) == 0
    assert [m["caption"] for m in read_dataset(tmp_path / "v2.npz").meta] != want
    with pytest.raises(SystemExit) as e:
        main(["--n", "2", "--wording", "v9", "--out", str(tmp_path / "x.npz")])
    assert e.value.code == 2


# --- v2 variants ------------------------------------------------------------------------------


def _variants(family):
    """(attribute, value, variant) for every v2 variant, held-out ones included."""
    for attr, values in W.PHRASES_V2[family].items():
        for value, ordinary in values.items():
            held = W.HELDOUT_PHRASES.get(family, {}).get(attr, {}).get(value, [])
            for v in ordinary + held:
                yield attr, value, v
    if family == "mushroom":
        for key in W.MUSHROOM_NOUNS:
            for v in W.MUSHROOM_NOUNS[key]:
                for c in FAMILIES["mushroom"].attributes["count"]:
                    if (c == 1) == ("one" in key) and (key != "pair" or c == 2):
                        yield "count", c, v


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_every_v2_variant_reads_back(family):
    """Every variant of every attribute value, counts as digits and as words, in two random
    templates of each split, reads back to the generating family and attributes."""
    fam, tried = FAMILIES[family], 0
    for attr, value, variant in _variants(family):
        combo = next(a for a in fam.combos() if a[attr] == value)
        for digits in (True, False):
            for split in ("train", "test"):
                rng = np.random.default_rng([tried, digits])
                caption, _ = C.make_caption(family, combo, rng, split, "v2", force={attr: variant}, digits=digits)
                assert read_caption(caption) == (family, combo), (variant, caption, read_caption(caption))
                if "{n}" in variant:
                    number = str(value) if digits else W.NUM_WORDS[value]
                    assert re.search(rf"\b{number}\b", caption), (variant, caption)
                tried += 1
    assert tried >= 4 * 6, family


@pytest.mark.parametrize("wording", ["v1", "v2"])
def test_round_trip_over_many_seeds(wording):
    """Family and every attribute read back from random captions of both splits; so the head noun
    of every caption is its own family's (no "foot ring" ring, no "6-step" staircase, no "table" lamp)."""
    for split, seed in (("train", 1), ("test", 2), ("train", 5)):
        for family, attrs, caption, _ in _captions(wording, split, seed, 1500):
            assert read_caption(caption) == (family, attrs), (caption, attrs)


def test_v2_counts_come_as_digits_and_as_words(v2_train):
    seen = {}
    for family, attrs, caption, _ in v2_train:
        for attr, value in attrs.items():
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                forms = seen.setdefault((family, attr, value), set())
                for form, word in (("digits", str(value)), ("words", W.NUM_WORDS[value])):
                    if re.search(rf"\b{word}\b", caption):
                        forms.add(form)
    assert len(seen) > 50
    assert all(v == {"digits", "words"} for v in seen.values()), {k: v for k, v in seen.items() if len(v) < 2}


def _v1_variants(family):
    return [v for values in C.PHRASES.get(family, {}).values()
            for v in (values if isinstance(values, list) else [x for vs in values.values() for x in vs])]  # fmt: skip


def test_v2_has_more_wordings_than_v1():
    for family in FAMILY_NAMES:
        v2 = {v for _, _, v in _variants(family)} | set(W.NOUNS_V2.get(family, []) + W.HELDOUT_NOUNS.get(family, []))
        v1 = set(_v1_variants(family)) | set(C.NOUNS.get(family, []))
        assert len(v2) > len(v1), family


# --- confusable families (the issue's examples) ----------------------------------------------


def test_the_issues_ladder_prompts_read_the_same():
    a, b = read_caption("a ladder with 6 rungs"), read_caption("a tall ladder with six rungs")
    assert a == ("ladder", {"rungs": 6}) and b == ("ladder", {"rungs": 6, "size": "tall"})
    assert read_caption("a 6-step ladder") == ("ladder", {"rungs": 6})
    assert read_caption("a ladder with 6 steps") == ("ladder", {"rungs": 6})
    assert read_caption("a staircase with 5 steps") == ("stairs", {"steps": 5})
    assert read_caption("stairs with five stairs") == ("stairs", {"steps": 5})


def test_a_table_lamp_is_a_lamp_and_a_table_a_table():
    assert read_caption("a table lamp") == ("lamp", {"size": "short"})
    assert read_caption("a desk lamp") == ("lamp", {"size": "short"})
    assert read_caption("a floor lamp") == ("lamp", {"size": "tall"})
    assert read_family("a table") == "table" and read_family("a wooden table with four legs") == "table"
    assert read_family("a lamp on a table") == "lamp" and read_family("a table with a lamp on it") == "table"
    assert read_family("a short desk cone-shaded lamp") == "lamp"  # v1's word order
    assert read_family("a bar stool with a foot ring") == "stool" and read_family("a gold ring") == "ring"
    assert read_family("two pine trees") == "pine_tree" and read_family("a tall tree") == "tree"
    assert read_caption("three dome-capped mushrooms") == ("mushroom", {"count": 3, "cap": "dome"})
    assert read_caption("a dragon") == (None, {})
    assert families_in("a table lamp next to a chair") == ["lamp", "table", "chair"]
    assert C.families_named("a desk lamp") and C.families_named("an armchair") and not C.families_named("a dragon")


def test_v2_lamps_say_table_or_desk_lamp_and_tables_never_say_lamp(v2_train):
    lamps = [c for f, _, c, _ in v2_train if f == "lamp"]
    assert any("table lamp" in c for c in lamps) and any("desk lamp" in c for c in lamps)
    assert any("floor lamp" in c for c in lamps)
    for wording in ("v1", "v2"):
        for family, _, caption, _ in _captions(wording, "train", 3, 1500) + _captions(wording, "test", 3, 1500):
            if family != "lamp":
                assert "lamp" not in caption.lower(), caption
    ladders = [c for f, a, c, _ in v2_train if f == "ladder" and a["rungs"] == 6]
    assert any(re.search(r"\b6 rungs\b", c) for c in ladders) and any("six rungs" in c for c in ladders)


# --- held-out wording -------------------------------------------------------------------------


def _held_patterns(family):
    """Regexes of the family's held-out phrasings, filled with every count in digits and words."""
    out = []
    for attr, values in W.HELDOUT_PHRASES.get(family, {}).items():
        for value, texts in values.items():
            for t in texts:
                body = t.split(":", 1)[1]
                for number in ({str(value), W.NUM_WORDS[value]} if "{n}" in body else {""}):
                    filled = W.fill(body, value, number)
                    filled = filled[5:] if filled.startswith("with ") else filled  # "with" is dropped in lists
                    out.append(re.compile(r"\b" + re.escape(filled) + r"\b", re.I))
    out += [re.compile(r"\b" + re.escape(n) + r"\b", re.I) for n in W.HELDOUT_NOUNS.get(family, [])]
    if family == "mushroom":
        out += [re.compile(r"\blone mushroom|\bclump of\b", re.I)]
    return out


def test_heldout_wordings_appear_only_in_the_test_split(v2_train, v2_test):
    held = {f: _held_patterns(f) for f in FAMILY_NAMES}
    assert sum(len(v) for v in held.values()) > 100
    for family, _, caption, tid in v2_train:
        assert not C.is_heldout_template(tid), caption
        hit = [p.pattern for p in held[family] if p.search(caption)]
        assert not hit, (caption, hit)
    test_hits = 0
    for family, _, caption, tid in v2_test:
        assert C.is_heldout_template(tid), caption
        test_hits += any(p.search(caption) for p in held[family])
    assert test_hits > 0.6 * len(v2_test), test_hits  # most test captions use a held-out phrasing too


def test_heldout_list_is_fixed_whatever_the_seed():
    """Train (seed 1) and test (seed 2) must agree on what is held out: the list is explicit,
    and the held-out templates are the same for every seed."""
    for family in FAMILY_NAMES:
        assert C.templates(family, "test", "v2") == C.templates(family, "test", "v2")
        held_ids = {t for t, _ in C.templates(family, "test", "v2")}
        assert {"g5", "g11", "g17", "g23"} <= held_ids
        assert not held_ids & {t for t, _ in C.templates(family, "train", "v2")}
    a = _captions("v2", "test", 2, 100)
    assert a == _captions("v2", "test", 2, 100)  # deterministic by seed
    assert a != _captions("v2", "test", 3, 100)
