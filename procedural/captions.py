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

NUM_WORDS = {
    0: "zero",
    1: "one",
    2: "two",
    3: "three",
    4: "four",
    5: "five",
    6: "six",
    7: "seven",
    8: "eight",
    9: "nine",
    10: "ten",
}

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


# ---------------------------------------------------------------------------------------------
# attribute phrases
# ---------------------------------------------------------------------------------------------
# Variants are "A:text" (adjective before the noun) or "W:text" (clause after it); {n} is a count
# written as a word or in digits, {s} a plural s.


def _yes_no(yes, no):
    return {True: yes, False: no}


COUNT = lambda *v: list(v)  # noqa: E731  (readability of the table below)

PHRASES = {
    "chair": {
        "legs": COUNT("A:{n}-legged", "W:with {n} legs", "W:on {n} legs", "W:standing on {n} legs"),
        "armrests": _yes_no(
            ["W:with armrests", "W:with arms on both sides", "W:with armrests on the sides"],
            ["A:armless", "W:without armrests", "W:with no armrests"],
        ),
        "size": {
            "tall": ["A:tall", "A:high-backed", "W:with a tall backrest", "W:with a high back"],
            "short": ["A:short", "A:low-backed", "W:with a low backrest", "W:with a short back"],
        },
    },
    "table": {
        "legs": COUNT("A:{n}-legged", "W:with {n} legs", "W:on {n} legs"),
        "size": {
            "tall": ["A:tall", "A:high", "A:tall bar-height"],
            "short": ["A:short", "A:low", "A:short coffee-height"],
            "wide": ["A:wide", "A:long wide", "A:wide rectangular"],
        },
    },
    "stool": {
        "legs": COUNT("A:{n}-legged", "W:with {n} legs", "W:on {n} splayed legs"),
        "size": {"tall": ["A:tall", "A:tall high"], "short": ["A:short", "A:low", "A:short little"]},
        "footrest": _yes_no(
            ["W:with a footrest ring", "W:with a round footrest", "W:with a foot ring"],
            ["W:without a footrest", "W:with no footrest"],
        ),
    },
    "bench": {
        "legs": COUNT("A:{n}-legged", "W:with {n} legs", "W:on {n} legs"),
        "backrest": _yes_no(
            ["W:with a backrest", "W:with a back rest"], ["A:backless", "W:without a backrest", "W:with no backrest"]
        ),
        "size": {"long": ["A:long", "A:long narrow"], "short": ["A:short", "A:short compact"]},
    },
    "bed": {
        "pillows": {
            1: ["W:with one pillow", "W:with a single pillow", "W:with 1 pillow"],
            2: ["W:with two pillows", "W:with 2 pillows", "W:with a pair of pillows"],
        },
        "footboard": _yes_no(
            ["W:with a footboard", "W:with a headboard and a footboard"],
            ["W:without a footboard", "W:with no footboard", "W:with only a headboard"],
        ),
        "size": {
            "single": ["A:single", "A:narrow single", "A:twin-size"],
            "double": ["A:double", "A:wide double", "A:queen-size double"],
        },
    },
    "bookshelf": {
        "shelves": COUNT("W:with {n} shelves", "A:{n}-shelf", "W:with {n} shelf levels"),
        "size": {"tall": ["A:tall", "A:tall narrow"], "wide": ["A:wide", "A:wide low"]},
        "back": _yes_no(
            ["W:with a back panel", "A:closed-back"],
            ["A:open-backed", "W:without a back panel", "W:with no back panel"],
        ),
    },
    "mug": {
        "handle": _yes_no(
            ["W:with a handle", "W:with a round handle"], ["A:handleless", "W:without a handle", "W:with no handle"]
        ),
        "size": {"tall": ["A:tall"], "short": ["A:short", "A:short squat"]},
    },
    "bottle": {
        "neck": {"long": ["W:with a long neck", "A:long-necked"], "short": ["W:with a short neck", "A:short-necked"]},
        "body": {
            "round": ["A:round", "W:with a round cylindrical body", "W:with a round body"],
            "square": ["A:square", "W:with a square body", "A:square-bodied"],
        },
        "cap": _yes_no(
            ["W:with a cap", "W:with a screw cap", "A:capped"], ["W:without a cap", "A:uncapped", "W:with no cap"]
        ),
    },
    "vase": {
        "handles": {
            0: ["W:without handles", "W:with no handles", "A:handleless"],
            2: ["W:with two handles", "W:with 2 handles", "A:two-handled"],
        },
        "shape": {
            "round": ["A:round", "A:round bulbous", "A:round-bellied"],
            "slender": ["A:slender", "A:tall slender"],
        },
    },
    "lamp": {
        "size": {"tall": ["A:tall floor", "A:tall standing"], "short": ["A:short desk", "A:short table"]},
        "shade": {
            "cone": ["W:with a cone shade", "W:with a conical lampshade", "A:cone-shaded"],
            "cylinder": [
                "W:with a cylinder shade",
                "W:with a cylindrical lampshade",
                "W:with a drum-shaped cylinder shade",
            ],
        },
        "base": {
            "round": ["W:on a round base", "W:with a round base"],
            "square": ["W:on a square base", "W:with a square base"],
        },
    },
    "tree": {
        "crown": {
            "single": ["W:with a single round crown", "W:with one round crown", "W:with a single crown"],
            "cluster": [
                "W:with a cluster of round clumps",
                "W:with a crown made of a cluster of blobs",
                "W:with a clustered crown",
            ],
        },
        "size": {"tall": ["A:tall", "A:tall slim"], "short": ["A:short", "A:short wide"]},
    },
    "pine_tree": {
        "tiers": COUNT(
            "W:with {n} tiers", "A:{n}-tier", "W:with {n} layers of branches", "W:made of {n} stacked cones"
        ),
        "size": {"tall": ["A:tall", "A:tall slim"], "short": ["A:short", "A:short wide"]},
    },
    "mushroom": {
        "cap": {
            "dome": ["A:dome-capped", "W:with {a}dome-shaped cap{s}", "W:with {a}round dome cap{s}"],
            "flat": ["A:flat-capped", "W:with {a}flat cap{s}", "W:with {a}flat disc cap{s}"],
        },
    },
    "cactus": {
        "arms": COUNT("W:with {n} arm{s}", "A:{n}-armed", "W:with {n} branch{es} curving up"),
        "pot": _yes_no(
            ["W:in a pot", "W:planted in a pot", "A:potted"],
            ["W:without a pot", "W:growing from the ground", "W:with no pot"],
        ),
    },
    "snowman": {
        "balls": COUNT("W:made of {n} snowballs", "W:with {n} stacked balls", "A:{n}-ball"),
        "hat": _yes_no(["W:wearing a top hat", "W:with a hat"], ["W:without a hat", "A:hatless", "W:with no hat"]),
        "arms": _yes_no(["W:with stick arms", "W:with twig arms"], ["W:without arms", "A:armless", "W:with no arms"]),
    },
    "house": {
        "windows": COUNT("W:with {n} front window{s}", "W:with {n} window{s}", "A:{n}-window"),
        "roof": {
            "gable": ["W:with a gable roof", "W:with a pitched roof", "A:gable-roofed"],
            "flat": ["W:with a flat roof", "A:flat-roofed"],
        },
        "chimney": _yes_no(["W:with a chimney"], ["W:without a chimney", "W:with no chimney"]),
    },
    "tower": {
        "tiers": COUNT("W:with {n} tiers", "A:{n}-tier", "W:with {n} stacked levels", "A:{n}-storey"),
        "top": {
            "spire": ["W:with a pointed spire", "W:topped by a cone spire", "A:spired"],
            "battlements": ["W:with battlements", "W:topped by crenellated battlements", "A:crenellated"],
        },
    },
    "arch": {
        "openings": {
            1: ["W:with a single opening", "W:with one opening", "A:single"],
            2: ["W:with two openings", "W:with 2 openings", "A:double"],
            3: ["W:with three openings", "W:with 3 openings", "A:triple"],
        },
        "size": {"tall": ["A:tall", "A:tall narrow"], "wide": ["A:wide", "A:wide low"]},
    },
    "stairs": {
        "steps": COUNT("W:with {n} steps", "A:{n}-step", "W:with {n} stairs"),
        "railing": _yes_no(
            ["W:with a railing", "W:with a handrail", "W:with a hand rail on one side"],
            ["W:without a railing", "W:with no railing", "W:without handrail"],
        ),
        "size": {"wide": ["A:wide"], "narrow": ["A:narrow"]},
    },
    "ring": {
        "gem": _yes_no(
            ["W:with a gem", "W:with a gemstone on top", "W:set with a gem"],
            ["W:without a gem", "A:plain", "W:with no gemstone"],
        ),
        "band": {
            "thin": ["A:thin", "W:with a thin band"],
            "thick": ["A:thick", "W:with a thick band", "A:chunky thick"],
        },
    },
    "rocket": {
        "fins": COUNT("W:with {n} fins", "A:{n}-finned", "W:with {n} tail fins"),
        "boosters": _yes_no(
            ["W:with side boosters", "W:with two side boosters", "W:with boosters"],
            ["W:without boosters", "W:with no side boosters"],
        ),
    },
    "car": {
        "style": {"sedan": ["A:sedan"], "pickup": ["A:pickup"], "van": ["A:van-like"]},
        "spoiler": _yes_no(["W:with a rear spoiler", "W:with a spoiler"], ["W:without a spoiler", "W:with no spoiler"]),
    },
    "ladder": {
        "rungs": COUNT("W:with {n} rungs", "A:{n}-rung", "W:with {n} steps between the rails"),
        "size": {"tall": ["A:tall", "A:tall narrow"], "short": ["A:short", "A:short wide"]},
    },
    "fence": {
        "posts": COUNT("W:with {n} posts", "A:{n}-post", "W:with {n} upright posts"),
        "rails": COUNT("W:with {n} horizontal rail{s}", "W:with {n} rail{s}", "W:with {n} crossbar{s}"),
    },
    "windmill": {
        "blades": COUNT("W:with {n} blades", "A:{n}-bladed", "W:with {n} sails"),
        "roof": {
            "cone": ["W:with a cone roof", "W:with a pointed roof"],
            "dome": ["W:with a dome roof", "W:with a rounded dome roof"],
        },
    },
}

NOUNS = {
    "chair": ["chair", "dining chair", "side chair"],
    "table": ["table", "dining table"],
    "stool": ["stool", "stool", "bar stool"],
    "bench": ["bench", "wooden bench"],
    "bed": ["bed"],
    "bookshelf": ["bookshelf", "bookcase", "shelf unit"],
    "mug": ["mug", "cup"],
    "bottle": ["bottle"],
    "vase": ["vase", "urn vase"],
    "lamp": ["lamp"],
    "tree": ["tree", "deciduous tree"],
    "pine_tree": ["pine tree", "fir tree", "conifer tree"],
    "cactus": ["cactus"],
    "snowman": ["snowman"],
    "house": ["house", "cottage"],
    "tower": ["tower", "castle tower", "turret"],
    "arch": ["arch", "archway", "arcade"],
    "stairs": ["staircase", "flight of stairs", "stairs"],
    "ring": ["ring", "finger ring"],
    "rocket": ["rocket", "space rocket"],
    "car": ["car", "truck", "vehicle"],
    "ladder": ["ladder"],
    "fence": ["fence", "fence section"],
    "windmill": ["windmill"],
}



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
