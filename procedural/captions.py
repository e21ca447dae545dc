"""Captions for procedural samples.

Captions. A caption is a template filled with a noun and one phrase per attribute, each phrase
drawn from several variants and placed either before the noun as an adjective ("a tall
four-legged chair") or after it as a clause ("a chair with 4 legs and no armrests"). *Every*
discrete attribute of the sample is mentioned in every caption; :mod:`ar3d.procedural.mentions`
holds, per family/attribute/value, a regular expression that a v1 caption matches (tests check it).

Templates live in two lists: :data:`GENERIC_TEMPLATES`, shared by all families, and one list
per family in :data:`FAMILY_TEMPLATES`. Held-out rule for templates: in the generic list every
template whose index is 5 mod 6 (indices 5 and 11), and in each family list its last template,
are used by the test split only; the train split never sees them. Test captions always use a
held-out template (generic or family, at random), so every test prompt is worded in a way
training never saw; about half the test samples are also held-out attribute combinations
(:mod:`ar3d.procedural.families`).

Wordings. ``wording="v1"`` (the shipped demo model's data, kept byte for byte: the tables in this
module) or ``"v2"`` (the default for new data: :mod:`ar3d.procedural.wording` — counts as digits
and words, synonyms, the lamp's noun carrying its size, generic templates 12-23, and a held-out
wording list used by the test split only). :mod:`ar3d.procedural.read_caption` reads both back.

Plans (Hi-GRPO's step-1 and step-2 text) are made by :mod:`ar3d.procedural.plans`.
"""

from __future__ import annotations

import re

import numpy as np

from .phrases import NOUNS, NUM_WORDS, PHRASES
from .wording import EXTRA_GENERIC_TEMPLATES, describe_v2

__all__ = [
    "WORDINGS",
    "DEFAULT_WORDING",
    "GENERIC_TEMPLATES",
    "FAMILY_TEMPLATES",
    "templates",
    "is_heldout_template",
    "make_caption",
    "describe",
]


GENERIC_TEMPLATES = (
    "a {adj} {noun} {with}",
    "a 3D model of a {adj} {noun} {with}",
    "A {adj} {noun} {with}.",
    "{adj} {noun} {with}",
    "generate a {adj} {noun} {with}",
    "I need a {adj} {noun} {with}",  # test only
    "a simple {adj} {noun} {with}",
    "a {adj} {noun} {with}, standing upright",
    "make a {adj} {noun} {with}",
    "a low-poly {adj} {noun} {with}",
    "3D shape: a {adj} {noun} {with}",
    "could you build a {adj} {noun} {with}?",  # test only
)

FAMILY_TEMPLATES = {
    "chair": (
        "a {adj} {noun} {with} to sit on",
        "a {adj} wooden {noun} {with}",
        "furniture: a {adj} {noun} {with}",
        "a {adj} {noun} {with} for a dining room",
        "a {adj} {noun} {with}, the kind you pull up to a desk",
    ),
    "table": (
        "a {adj} {noun} {with} for a kitchen",
        "a {adj} wooden {noun} {with}",
        "furniture: a {adj} {noun} {with}",
        "a {adj} {noun} {with} for the living room",
        "a {adj} {noun} {with} to put things on",
    ),
    "stool": (
        "a {adj} {noun} {with} to sit on",
        "a {adj} wooden {noun} {with}",
        "a {adj} kitchen {noun} {with}",
        "a {adj} {noun} {with}, no backrest",
    ),
    "bench": (
        "a {adj} {noun} {with} for a park",
        "a {adj} wooden {noun} {with}",
        "a {adj} garden {noun} {with}",
        "a {adj} {noun} {with} to sit on",
    ),
    "bed": (
        "a {adj} {noun} {with} for a bedroom",
        "a {adj} wooden {noun} {with}",
        "a {adj} {noun} {with} to sleep in",
        "furniture: a {adj} {noun} {with}",
    ),
    "bookshelf": (
        "a {adj} {noun} {with} for books",
        "a {adj} wooden {noun} {with}",
        "a {adj} open {noun} {with}",
        "a {adj} {noun} {with} for a study",
    ),
    "mug": (
        "a {adj} coffee {noun} {with}",
        "a {adj} ceramic {noun} {with}",
        "a {adj} {noun} {with} for tea",
        "a {adj} {noun} {with}, open at the top",
    ),
    "bottle": (
        "a {adj} glass {noun} {with}",
        "a {adj} {noun} {with} for water",
        "a {adj} plastic {noun} {with}",
        "a {adj} {noun} {with}, standing on its base",
    ),
    "vase": (
        "a {adj} ceramic {noun} {with}",
        "a {adj} flower {noun} {with}",
        "a {adj} clay {noun} {with}",
        "a {adj} {noun} {with} for flowers",
    ),
    "lamp": (
        "a {adj} {noun} {with} for a room",
        "a {adj} electric {noun} {with}",
        "a {adj} reading {noun} {with}",
        "a {adj} {noun} {with} that gives light",
    ),
    "tree": (
        "a {adj} {noun} {with} in a park",
        "a {adj} leafy {noun} {with}",
        "a {adj} cartoon {noun} {with}",
        "a {adj} {noun} {with} growing from the ground",
    ),
    "pine_tree": (
        "a {adj} {noun} {with} in a forest",
        "a {adj} evergreen {noun} {with}",
        "a {adj} cartoon {noun} {with}",
        "a {adj} {noun} {with} for Christmas",
    ),
    "mushroom": (
        "{adj} {noun} {with} in a forest",
        "{adj} cartoon {noun} {with}",
        "{adj} toadstool-like {noun} {with}",
        "{adj} {noun} {with} growing from the ground",
    ),
    "cactus": (
        "a {adj} desert {noun} {with}",
        "a {adj} green {noun} {with}",
        "a {adj} saguaro {noun} {with}",
        "a {adj} {noun} {with} like in a western",
    ),
    "snowman": (
        "a {adj} {noun} {with} in winter",
        "a {adj} cartoon {noun} {with}",
        "a {adj} {noun} {with} and a carrot nose",
        "a {adj} {noun} {with} in the garden",
    ),
    "house": (
        "a {adj} small {noun} {with}",
        "a {adj} cottage-style {noun} {with}",
        "a {adj} toy {noun} {with}",
        "a {adj} {noun} {with} and a front door",
    ),
    "tower": (
        "a {adj} castle {noun} {with}",
        "a {adj} stone {noun} {with}",
        "a {adj} round {noun} {with}",
        "a {adj} medieval {noun} {with}",
    ),
    "arch": (
        "a {adj} stone {noun} {with}",
        "a {adj} {noun} {with} like a gateway",
        "a {adj} roman {noun} {with}",
        "a {adj} {noun} {with} to walk through",
    ),
    "stairs": (
        "a {adj} {noun} {with} for a porch",
        "a {adj} concrete {noun} {with}",
        "a {adj} {noun} {with} going up",
        "a {adj} {noun} {with} leading to a door",
    ),
    "ring": (
        "a {adj} gold {noun} {with}",
        "a {adj} wedding {noun} {with}",
        "a {adj} silver {noun} {with}",
        "a {adj} {noun} {with} standing on its edge",
    ),
    "rocket": (
        "a {adj} space {noun} {with}",
        "a {adj} toy {noun} {with}",
        "a {adj} cartoon {noun} {with}",
        "a {adj} {noun} {with} ready for launch",
    ),
    "car": (
        "a {adj} toy {noun} {with}",
        "a {adj} cartoon {noun} {with}",
        "a {adj} {noun} {with} on four wheels",
        "a {adj} {noun} {with}, seen from the side",
    ),
    "ladder": (
        "a {adj} wooden {noun} {with}",
        "a {adj} {noun} {with} to climb",
        "a {adj} metal {noun} {with}",
        "a {adj} {noun} {with} for picking apples",
    ),
    "fence": (
        "a {adj} wooden {noun} {with}",
        "a {adj} garden {noun} {with}",
        "a {adj} picket {noun} {with}",
        "a {adj} {noun} section {with}",
    ),
    "windmill": (
        "a {adj} old {noun} {with}",
        "a {adj} dutch {noun} {with}",
        "a {adj} farm {noun} {with}",
        "a {adj} {noun} {with} on a hill",
    ),
}


WORDINGS = ("v1", "v2")
DEFAULT_WORDING = "v2"  # new data; "v1" makes the shipped demo model's captions exactly


def check_wording(wording: str) -> str:
    if wording not in WORDINGS:
        raise ValueError(
            f"wording must be one of {', '.join(WORDINGS)} (v1: the shipped demo model's data), got {wording!r}"
        )
    return wording


def templates(family: str, split: str, wording: str = DEFAULT_WORDING) -> list[tuple[str, str]]:
    """(template id, template) pairs a split may use for a family (ids: "g3", "chair:1"); v2 adds
    the generic templates 12-23 (:data:`ar3d.procedural.wording.EXTRA_GENERIC_TEMPLATES`)."""
    generic = GENERIC_TEMPLATES + (EXTRA_GENERIC_TEMPLATES if check_wording(wording) == "v2" else ())
    out = [(f"g{i}", t) for i, t in enumerate(generic)]
    out += [(f"{family}:{i}", t) for i, t in enumerate(FAMILY_TEMPLATES[family])]
    return [(i, t) for i, t in out if is_heldout_template(i) == (split == "test")]


def is_heldout_template(template_id: str) -> bool:
    """Generic templates 5, 11, …; the last template of each family list."""
    if template_id.startswith("g"):
        return int(template_id[1:]) % 6 == 5
    family, i = template_id.split(":")
    return int(i) == len(FAMILY_TEMPLATES[family]) - 1


def family_nouns() -> list[str]:
    """The families as people say them ("pine tree", not "pine_tree"), in the registry's order."""
    from .families import FAMILY_NAMES

    return [f.replace("_", " ") for f in FAMILY_NAMES]


def families_named(text: str) -> list[str]:
    """The families whose nouns (singular or plural, any wording's synonyms) ``text`` mentions:
    the only objects the demo model, trained on these captions, can make."""
    from .read_caption import families_in

    return families_in(text)


def _count_text(n: int, rng) -> str:
    return NUM_WORDS[n] if rng.random() < 0.7 else str(n)


def _fill(text: str, n, rng) -> str:
    if "{n}" in text:
        text = text.replace("{n}", _count_text(n, rng))
    plural = not (isinstance(n, int) and not isinstance(n, bool) and n == 1)
    text = text.replace("{s}", "s" if plural else "").replace("{es}", "es" if plural else "")
    return text.replace("{a}", "" if plural else "a ")


def describe(family: str, attrs: dict, rng: np.random.Generator) -> tuple[str, list[str], list[str]]:
    """(noun, adjectives, clauses) naming every attribute once, with random wording."""
    adjs, withs = [], []
    table = PHRASES.get(family, {})
    noun = str(rng.choice(NOUNS.get(family, [family])))
    if family == "car":
        noun = {"pickup": "truck", "van": str(rng.choice(["van", "minivan"]))}.get(
            attrs["style"], noun if noun != "truck" else "car"
        )
    for key, value in attrs.items():
        if family == "mushroom" and key == "count":
            continue
        variants = table[key]
        options = variants if isinstance(variants, list) else variants[value]
        choice = str(rng.choice(options))
        kind, text = choice.split(":", 1)
        n = attrs["count"] if family == "mushroom" else value
        text = _fill(text, n, rng)
        (adjs if kind == "A" else withs).append(text)
    if family == "car" and attrs["style"] == "van":
        adjs = [a for a in adjs if a != "van-like"]  # the noun says it
    if family == "mushroom":
        c = attrs["count"]
        if c == 1:
            noun = str(rng.choice(["a mushroom", "a single mushroom", "one mushroom"]))
        else:
            w = _count_text(c, rng)
            noun = str(rng.choice([f"a group of {w} mushrooms", f"{w} mushrooms", f"a cluster of {w} mushrooms"]))
            if c == 2 and rng.random() < 0.3:
                noun = "a pair of mushrooms"
    _size_first(adjs)
    return noun, adjs, withs


def _size_first(adjs: list[str]) -> None:
    """Size-like adjectives read best first."""
    adjs.sort(
        key=lambda a: (
            0
            if a.split()[0]
            in ("tall", "short", "wide", "long", "narrow", "single", "double", "round", "slender", "thin", "thick")
            else 1
        )
    )


def _join_clauses(clauses: list[str]) -> str:
    out = []
    for i, c in enumerate(clauses):
        if i and c.startswith("with ") and clauses[i - 1].startswith("with "):
            c = c[5:]
        out.append(c)
    if len(out) <= 1:
        return "".join(out)
    return ", ".join(out[:-1]) + (" " if out[-1].startswith("and ") else " and ") + out[-1]


_ARTICLE = re.compile(r"\b([Aa]) (?=(?:[aeiouAEIOU](?!ne\b|ni|se|sua)|8|11\b|18\b))")


def make_caption(
    family: str,
    attrs: dict,
    rng: np.random.Generator,
    split: str,
    wording: str = DEFAULT_WORDING,
    **pin,
) -> tuple[str, str]:
    """(caption, template id) for a sample of ``split``; every attribute is mentioned. ``wording``
    "v1" draws exactly the shipped demo model's captions, "v2" the :mod:`.wording` variants
    (``pin``: ``force``/``digits`` of :func:`ar3d.procedural.wording.describe_v2`)."""
    choices = templates(family, split, wording)
    tid, tpl = choices[int(rng.integers(len(choices)))]
    if wording == "v1":
        noun, adjs, withs = describe(family, attrs, rng)
    else:
        noun, adjs, withs = describe_v2(family, attrs, rng, split, **pin)
        _size_first(adjs)
    rng.shuffle(withs)
    if family == "mushroom":  # the noun phrase carries its own article / number
        tpl = tpl.replace("a {adj} {noun}", "{adj} {noun}").replace("A {adj} {noun}", "{adj} {noun}")
        word = re.match(r"\{adj\} ([\w-]+) \{noun\}", tpl)
        if word and wording == "v2":  # "{adj} cartoon {noun}": "a pair of cartoon mushrooms"
            adjs.append(word.group(1))
            tpl = tpl.replace(word.group(0), "{adj} {noun}")
        noun_phrase = noun
        if adjs:
            # put the adjectives inside the noun phrase: "three dome-capped mushrooms"
            head, _, last = noun.rpartition(" ")
            noun_phrase = f"{head} {' '.join(adjs)} {last}".strip()
        text = tpl.format(adj="", noun=noun_phrase, **{"with": _join_clauses(withs)})
    else:
        text = tpl.format(adj=" ".join(adjs), noun=noun, **{"with": _join_clauses(withs)})
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.?])", r"\1", text)
    text = _ARTICLE.sub(lambda m: m.group(1) + "n ", text)
    return text[0].upper() + text[1:] if tpl[0].isupper() else text, tid
