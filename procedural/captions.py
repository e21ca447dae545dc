"""Captions and Hi-GRPO-style plans for procedural samples.

Captions. A caption is a template filled with a noun and one phrase per attribute, each phrase
drawn from several variants and placed either before the noun as an adjective ("a tall
four-legged chair") or after it as a clause ("a chair with 4 legs and no armrests"). *Every*
discrete attribute of the sample is mentioned in every caption; :data:`MENTIONS` holds, per
family/attribute/value, a regular expression that the caption matches (tests check it).

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

Plans. ``plan1`` follows Hi-GRPO's step 1 (a concise high-level semantic plan: global shape
primitives, their number and arrangement; ~15-40 words); ``plan2`` its step 2 (a detailed
visual description expanding the parts into precise geometric details: proportions, thickness,
placement; ~25-60 words). Both are deterministic text from the parameters with a little wording
variety drawn from the sample's generator. Lengths in plan2 are fractions of the object's
largest dimension, the unit the 64³ grid normalises to.
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
    "MENTIONS",
    "templates",
    "is_heldout_template",
    "make_caption",
    "make_plans",
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


_NUM = r"\b{w}\b|\b{d}\b|\b{d}-|\b{w}-"


def _num_re(n):
    return _NUM.format(w=NUM_WORDS[n], d=n)


def _has(word: str, negation: str) -> str:
    """Matches captions that contain ``word`` but none of the ``negation`` phrases."""
    return rf"^(?!.*(?:{negation})).*(?:{word})"


# Regular expressions a v1 caption matches for each attribute value (tests use them); the reader of
# both wordings is :mod:`ar3d.procedural.read_caption`.
MENTIONS = {
    "chair": {
        "legs": {n: _num_re(n) for n in (3, 4)},
        "armrests": {True: _has(r"\barm", r"armless|without arm|no arm"), False: r"armless|without arm|no arm"},
        "size": {"tall": r"tall|high", "short": r"short|low"},
    },
    "table": {
        "legs": {n: _num_re(n) for n in (3, 4, 6)},
        "size": {"tall": r"tall|high", "short": r"short|low", "wide": r"wide"},
    },
    "stool": {
        "legs": {n: _num_re(n) for n in (3, 4)},
        "size": {"tall": r"tall", "short": r"short|low"},
        "footrest": {
            True: _has(r"footrest|foot ring", r"without a footrest|no footrest"),
            False: r"without a footrest|no footrest",
        },
    },
    "bench": {
        "legs": {n: _num_re(n) for n in (4, 6)},
        "backrest": {
            True: _has(r"back ?rest", r"backless|without a backrest|no backrest"),
            False: r"backless|without a backrest|no backrest",
        },
        "size": {"long": r"long", "short": r"short"},
    },
    "bed": {
        "pillows": {1: r"one pillow|single pillow|\b1 pillow", 2: r"two pillows|2 pillows|pair of pillows"},
        "footboard": {
            True: _has(r"footboard", r"without a footboard|no footboard"),
            False: r"without a footboard|no footboard|only a headboard",
        },
        "size": {"single": r"single|twin", "double": r"double"},
    },
    "bookshelf": {
        "shelves": {n: _num_re(n) for n in (2, 3, 4, 5)},
        "size": {"tall": r"tall", "wide": r"wide"},
        "back": {
            True: _has(r"back panel|closed-back", r"open-backed|without a back|no back"),
            False: r"open-backed|without a back|no back",
        },
    },
    "mug": {
        "handle": {
            True: _has(r"handle", r"handleless|without a handle|no handle"),
            False: r"handleless|without a handle|no handle",
        },
        "size": {"tall": r"tall", "short": r"short"},
    },
    "bottle": {
        "neck": {"long": r"long", "short": r"short"},
        "body": {"round": r"round", "square": r"square"},
        "cap": {
            True: _has(r"\bcap\b|\bcapped", r"without a cap|uncapped|no cap"),
            False: r"without a cap|uncapped|no cap",
        },
    },
    "vase": {
        "handles": {0: r"without handles|no handles|handleless", 2: r"two handles|2 handles|two-handled"},
        "shape": {"round": r"round", "slender": r"slender"},
    },
    "lamp": {
        "size": {"tall": r"tall", "short": r"short"},
        "shade": {"cone": r"cone|conical", "cylinder": r"cylind"},
        "base": {"round": r"round base", "square": r"square base"},
    },
    "tree": {
        "crown": {"single": r"single|one round", "cluster": r"cluster"},
        "size": {"tall": r"tall", "short": r"short"},
    },
    "pine_tree": {"tiers": {n: _num_re(n) for n in (2, 3, 4)}, "size": {"tall": r"tall", "short": r"short"}},
    "mushroom": {
        "count": {1: r"\bmushroom\b", 2: _num_re(2) + "|pair", 3: _num_re(3)},
        "cap": {"dome": r"dome", "flat": r"flat"},
    },
    "cactus": {
        "arms": {n: _num_re(n) for n in (1, 2, 3)},
        "pot": {
            True: _has(r"in a pot|potted", r"without a pot|no pot"),
            False: r"without a pot|from the ground|no pot",
        },
    },
    "snowman": {
        "balls": {n: _num_re(n) for n in (2, 3)},
        "hat": {True: _has(r"\bhat\b", r"without a hat|hatless|no hat"), False: r"without a hat|hatless|no hat"},
        "arms": {
            True: _has(r"stick arms|twig arms", r"without arms|armless|no arms"),
            False: r"without arms|armless|no arms",
        },
    },
    "house": {
        "windows": {n: _num_re(n) for n in (1, 2, 3, 4)},
        "roof": {"gable": r"gable|pitched", "flat": r"flat"},
        "chimney": {True: _has(r"chimney", r"without a chimney|no chimney"), False: r"without a chimney|no chimney"},
    },
    "tower": {
        "tiers": {n: _num_re(n) for n in (2, 3, 4)},
        "top": {"spire": r"spire", "battlements": r"battlement|crenellated"},
    },
    "arch": {
        "openings": {
            1: r"single|one opening",
            2: r"two openings|2 openings|double",
            3: r"three openings|3 openings|triple",
        },
        "size": {"tall": r"tall", "wide": r"wide"},
    },
    "stairs": {
        "steps": {n: _num_re(n) for n in range(3, 9)},
        "railing": {
            True: _has(r"railing|handrail|hand rail", r"without (?:a )?(?:railing|handrail)|no railing"),
            False: r"without (?:a )?(?:railing|handrail)|no railing",
        },
        "size": {"wide": r"wide", "narrow": r"narrow"},
    },
    "ring": {
        "gem": {True: _has(r"\bgem", r"without a gem|plain|no gem"), False: r"without a gem|plain|no gem"},
        "band": {"thin": r"thin", "thick": r"thick"},
    },
    "rocket": {
        "fins": {n: _num_re(n) for n in (3, 4)},
        "boosters": {
            True: _has(r"boosters", r"without boosters|no side boosters"),
            False: r"without boosters|no side boosters",
        },
    },
    "car": {
        "style": {"sedan": r"sedan", "pickup": r"pickup", "van": r"van"},
        "spoiler": {True: _has(r"spoiler", r"without a spoiler|no spoiler"), False: r"without a spoiler|no spoiler"},
    },
    "ladder": {"rungs": {n: _num_re(n) for n in range(3, 9)}, "size": {"tall": r"tall", "short": r"short"}},
    "fence": {"posts": {n: _num_re(n) for n in range(3, 8)}, "rails": {n: _num_re(n) for n in (1, 2, 3)}},
    "windmill": {"blades": {n: _num_re(n) for n in (3, 4, 6)}, "roof": {"cone": r"cone|pointed", "dome": r"dome"}},
}


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


# ---------------------------------------------------------------------------------------------
# plans
# ---------------------------------------------------------------------------------------------


def _w(n):
    return NUM_WORDS.get(n, str(n))


def _plan_chair(p, f, pick):
    n, tall = p["legs"], p["size"] == "tall"
    arms = p["armrests"]
    place = "at the four corners" if n == 4 else "two at the front corners and one centred at the back"
    p1 = (
        f"{pick('A chair', 'Chair')} made of simple blocks: a flat square seat on "
        f"{_w(n)} straight legs, a {'tall' if tall else 'short'} backrest panel rising from the rear edge"
        + (", and two armrests on the sides." if arms else ", and no armrests.")
    )
    back = "a solid panel" if p["back_style"] == "solid" else "an open frame of two posts and rails"
    p2 = (
        f"Seat slab {f(p['seat_w'])} wide, {f(p['seat_d'])} deep and {f(p['seat_t'])} thick, its top at "
        f"{f(p['seat_h'] + p['seat_t'])}. {_w(n).capitalize()} {'square' if p['square_legs'] else 'round'} legs "
        f"{f(2 * p['leg_r'])} thick, {place}. Backrest: {back}, {f(p['back_h'])} tall and {f(p['back_t'])} thick."
        + (f" Armrest bars {f(p['arm_h'])} above the seat on front posts." if arms else "")
    )
    return p1, p2


def _plan_table(p, f, pick):
    n, size = p["legs"], p["size"]
    top = "a round tabletop" if n == 3 else "a rectangular tabletop"
    where = {3: "spaced evenly around the centre", 4: "near the four corners", 6: "three along each long side"}[n]
    p1 = f"{pick('A', 'One')} {size} table: {top} resting on {_w(n)} vertical legs {where}" + (
        ", joined under the top by an apron frame." if p["apron"] else ", with nothing else."
    )
    shape = f"diameter {f(p['width'])}" if n == 3 else f"{f(p['width'])} by {f(p['depth'])}"
    p2 = (
        f"Tabletop {shape}, {f(p['top_t'])} thick, its top surface at height {f(p['height'])}. "
        f"{_w(n).capitalize()} {'square' if p['square_legs'] else 'round'} legs {f(2 * p['leg_r'])} thick reach "
        f"from the floor to the underside of the top, {where}."
        + (f" A shallow apron {f(1.5 * p['top_t'])} deep links the leg tops." if p["apron"] else "")
    )
    return p1, p2


def _plan_stool(p, f, pick):
    n, size = p["legs"], p["size"]
    seat = "square" if p["square_seat"] else "round"
    p1 = f"A {size} stool: a thick {seat} seat on {_w(n)} legs that splay slightly outward toward the floor" + (
        ", linked by a ring-shaped footrest." if p["footrest"] else ", with no footrest and no backrest."
    )
    p2 = (
        f"{seat.capitalize()} seat {f(2 * p['seat_r'])} across and {f(p['seat_t'])} thick at height "
        f"{f(p['height'])}. {_w(n).capitalize()} round legs {f(2 * p['leg_r'])} thick run from under the seat edge "
        f"to a wider footprint on the floor."
        + (f" A torus footrest at {f(p['foot_z'] * p['height'])} height connects all legs." if p["footrest"] else "")
    )
    return p1, p2


def _plan_bench(p, f, pick):
    n = p["legs"]
    p1 = f"A {p['size']} bench: one long narrow seat plank on {_w(n)} square legs, " + (
        "with a backrest board along the rear edge." if p["backrest"] else "open at the back, without a backrest."
    )
    back = ""
    if p["backrest"]:
        back = f" Backrest {f(p['back_h'])} tall, " + (
            "a solid slab on the seat's back edge."
            if p["back_style"] == "slab"
            else "a board raised on short posts above the seat."
        )
    p2 = (
        f"Seat plank {f(p['width'])} long, {f(p['depth'])} deep and {f(p['seat_t'])} thick, its top at "
        f"{f(p['seat_h'])}. {_w(n).capitalize()} square legs {f(p['leg_a'])} thick stand in "
        f"{'two rows of three' if n == 6 else 'the four corners'}, set in a little from the ends."
        + (" Low rails join the legs like an H." if p["stretcher"] else "")
        + back
    )
    return p1, p2


def _plan_bed(p, f, pick):
    n = p["pillows"]
    p1 = (
        f"A {p['size']} bed: a box frame on four short legs, a thick mattress on top, a tall headboard at the back"
        + (", a lower footboard at the front" if p["footboard"] else "")
        + f" and {_w(n)} pillow{'s' if n > 1 else ''} at the head."
    )
    p2 = (
        f"Frame {f(p['width'])} wide and {f(p['length'])} long, raised {f(p['leg_h'])} on legs; mattress "
        f"{f(p['mattress_h'])} thick. Headboard {f(p['head_h'])} tall and {f(p['board_t'])} thick across the full width"
        + (f"; footboard {f(p['foot_h'])} tall" if p["footboard"] else "")
        + f". {_w(n).capitalize()} flattened oval pillow{'s' if n > 1 else ''} "
        + f"lie{'' if n > 1 else 's'} against the headboard."
    )
    return p1, p2


def _plan_bookshelf(p, f, pick):
    n = p["shelves"]
    p1 = (
        f"A {p['size']} bookshelf: two vertical side panels joined by {_w(n + 1)} horizontal boards that make "
        f"{_w(n)} open shelves stacked one above another"
        + (", closed by a back panel." if p["back"] else ", open at the back.")
    )
    p2 = (
        f"Overall {f(p['width'])} wide, {f(p['height'])} tall and {f(p['depth'])} deep. Panels and boards "
        f"{f(p['board_t'])} thick; the {_w(n + 1)} boards are evenly spaced from bottom to top"
        + (", above a low plinth" if p["plinth"] else "")
        + f", giving {_w(n)} equal compartments"
        + (" in front of a thin back panel." if p["back"] else " with no back panel.")
    )
    return p1, p2


def _plan_mug(p, f, pick):
    p1 = f"A {p['size']} mug: one hollow cylinder open at the top with a flat bottom" + (
        ", and a curved loop handle on the right side." if p["handle"] else ", with no handle."
    )
    p2 = (
        f"Cylinder {f(2 * p['radius'])} across and {f(p['height'])} tall, walls {f(p['wall'])} thick around a deep "
        f"round cavity that reaches almost to the flat bottom."
        + (
            f" The handle is a half ring {f(2 * p['handle_r'])} tall attached to the side at mid height."
            if p["handle"]
            else " The outer side is smooth and plain."
        )
    )
    return p1, p2


def _plan_bottle(p, f, pick):
    body = "cylindrical" if p["body"] == "round" else "square box-shaped"
    p1 = f"A bottle: a {body} body, a sloping shoulder narrowing into a {p['neck']} thin neck" + (
        ", closed by a slightly wider cap on top." if p["cap"] else ", with an open lip and no cap."
    )
    p2 = (
        f"Body {f(2 * p['radius'])} across with a flat base; shoulder {f(p['shoulder'])} tall tapering to a neck "
        f"{f(2 * p['neck_r'])} wide and {f(p['neck_len'])} long."
        + (
            f" The cap is {f(2.9 * p['neck_r'])} wide, the top {f(p['cap_h'])} of the height."
            if p["cap"]
            else " A small rolled lip rings the open mouth."
        )
    )
    return p1, p2


def _plan_vase(p, f, pick):
    h = p["handles"]
    p1 = (
        f"A {p['shape']} vase: one smooth hollow body of revolution, widest at the belly, narrowing to a neck "
        f"and flaring at the lip" + (", with two loop handles on opposite sides." if h else ", with no handles.")
    )
    p2 = (
        f"Height {f(1.0)}; belly {f(2 * p['belly_r'])} across at {f(p['belly_z'])} up, base {f(2 * p['base_r'])} wide, "
        f"neck {f(2 * p['neck_r'])} wide, lip flaring to {f(2 * p['neck_r'] * p['lip'])}. Walls {f(p['wall'])} thick "
        f"around an open cavity." + (" Ring handles sit on both sides below the neck." if h else "")
    )
    return p1, p2


def _plan_lamp(p, f, pick):
    kind = "floor lamp" if p["size"] == "tall" else "desk lamp"
    shade = "a cone-shaped shade" if p["shade"] == "cone" else "a cylindrical drum shade"
    p1 = f"A {p['size']} {kind}: a flat {p['base']} base, one thin vertical pole in the centre and {shade} on top."
    p2 = (
        f"Total height {f(p['height'])}. {p['base'].capitalize()} base {f(2 * p['base_r'])} wide and {f(p['base_h'])} "
        f"thick; pole {f(2 * p['pole_r'])} thick; shade {f(p['shade_h'])} tall and {f(2 * p['shade_r'])} wide at the "
        f"bottom"
        + (", narrowing upward" if p["shade"] == "cone" else ", straight-sided")
        + ", centred over the base and hiding the top of the pole."
    )
    return p1, p2


def _plan_tree(p, f, pick):
    crown = "one big round crown" if p["crown"] == "single" else "a crown of four overlapping round clumps"
    p1 = f"A {p['size']} tree: a straight tapering trunk rising from the ground, topped by {crown}."
    p2 = (
        f"Trunk {f(2 * p['trunk_r'])} thick at the top, flaring a little at the ground, and about {f(p['trunk_h'])} "
        f"tall before the foliage. Crown about "
        f"{f(2 * p['crown_r'])} wide and {f(2 * p['crown_r'] * p['crown_stretch'])} tall"
        + (
            ", a single smooth ellipsoid."
            if p["crown"] == "single"
            else ": one clump on top and three smaller ones around it, lower down."
        )
    )
    return p1, p2


def _plan_pine(p, f, pick):
    n = p["tiers"]
    p1 = (
        f"A {p['size']} pine tree: a short trunk carrying {_w(n)} stacked cones that overlap and shrink toward "
        "the pointed top."
    )
    p2 = (
        f"Trunk {f(2 * p['trunk_r'])} thick, {f(p['trunk_h'])} tall. The lowest cone is {f(2 * p['base_r'])} wide; "
        "each of "
        f"the {_w(n)} cones starts partway up the one below and is {p['shrink']:.2f} as wide, so the outline steps "
        f"in {_w(n)} tiers to the tip."
    )
    return p1, p2


def _plan_mushroom(p, f, pick):
    c = p["count"]
    cap = "dome-shaped" if p["cap"] == "dome" else "flat disc"
    if c == 1:
        p1 = f"A single mushroom: one thick cylindrical stem under a wide {cap} cap."
        p1 += " Nothing else stands around it."
    else:
        p1 = (
            f"{_w(c).capitalize()} mushrooms side by side: one large and {_w(c - 1)} smaller, each a thick stem "
            "under a "
            f"wide {cap} cap."
        )
    p2 = (
        f"Main stem {f(2 * p['stem_r'])} thick and {f(p['stem_h'])} tall, slightly wider at the foot; its cap "
        f"{f(2 * p['cap_r'])} across and {f(p['cap_r'] * p['cap_k'])} high, "
        + ("rounded like a dome." if p["cap"] == "dome" else "flat with a rounded rim.")
        + (
            f" The smaller ones are {f(p['small'])} times its size, standing apart to its side{'s' if c > 2 else ''}."
            if c > 1
            else " The stem stands upright on the ground."
        )
    )
    return p1, p2


def _plan_cactus(p, f, pick):
    n = p["arms"]
    p1 = (
        f"A cactus: one tall rounded column with {_w(n)} arm{'s' if n > 1 else ''} that bend{'s' if n == 1 else ''} "
        f"upward like elbows" + (", standing in a flowerpot." if p["pot"] else ", rising straight from the ground.")
    )
    p2 = (
        f"Trunk a capsule {f(2 * p['trunk_r'])} thick reaching {f(p['trunk_h'])} high. Each arm is "
        f"{f(2 * p['arm_r'])} thick, leaves the trunk horizontally, then turns up; arms sit at different heights"
        + (" around the trunk." if n > 1 else ".")
        + (f" Tapered pot {f(2 * p['pot_r'])} wide and {f(p['pot_h'])} tall with a rim." if p["pot"] else "")
    )
    return p1, p2


def _plan_snowman(p, f, pick):
    n = p["balls"]
    p1 = (
        f"A snowman: {_w(n)} stacked spheres getting smaller toward the top, a carrot nose"
        + (", a top hat" if p["hat"] else "")
        + (" and two stick arms." if p["arms"] else ", no arms.")
    )
    p2 = (
        f"Bottom ball {f(2 * p['r1'])} across, next {f(2 * p['r2'])}"
        + (f", head {f(2 * p['r3'])}" if n == 3 else "")
        + "; each ball sinks slightly into the one below and the bottom is flattened on the ground. A small cone "
        "nose points forward from the head."
        + (" A hat with a thin brim sits on the head." if p["hat"] else "")
        + (" Thin sticks angle up and out from the upper body." if p["arms"] else "")
    )
    return p1, p2


def _plan_house(p, f, pick):
    n = p["windows"]
    roof = "a triangular gable roof" if p["roof"] == "gable" else "a flat roof slab"
    p1 = (
        f"A house: one box-shaped body under {roof}, a front door and {_w(n)} window{'s' if n > 1 else ''} in a row "
        f"on the front wall" + (", plus a chimney on the roof." if p["chimney"] else ", no chimney.")
    )
    p2 = (
        f"Walls {f(p['width'])} wide, {f(p['depth'])} deep and {f(p['wall_h'])} tall; "
        + (
            f"roof {f(p['roof_h'])} high with a ridge along the width"
            if p["roof"] == "gable"
            else "roof slab overhanging slightly"
        )
        + f". Door and {_w(n)} window{'s' if n > 1 else ''} are recessed {f(p['recess'])} into the front; windows "
        f"{f(p['win_w'])} wide, evenly spaced above door height."
        + (" Square chimney rises above the roof." if p["chimney"] else "")
    )
    return p1, p2


def _plan_tower(p, f, pick):
    n = p["tiers"]
    top = "a pointed cone spire" if p["top"] == "spire" else "a ring of battlements"
    p1 = (
        f"A round tower: {_w(n)} stacked cylindrical tiers, each a bit narrower than the one below with a ledge "
        f"between them, crowned by {top}."
    )
    p2 = (
        f"Base tier {f(2 * p['base_r'])} across; every tier is {f(p['body_h'] / n)} tall and shrinks to "
        f"{p['shrink']:.2f} of the width below. Thin ledges ring each tier top. "
        + (
            "A cone spire finishes the top."
            if p["top"] == "spire"
            else f"{_w(p['merlons']).capitalize()} square merlons line the parapet."
        )
        + " A door is cut at the bottom front."
    )
    return p1, p2


def _plan_arch(p, f, pick):
    n = p["openings"]
    p1 = (
        f"A {p['size']} stone arch: one thick rectangular wall pierced by {_w(n)} round-topped "
        f"opening{'s' if n > 1 else ''}, separated by {_w(n + 1)} solid pillars."
    )
    p2 = (
        f"Each opening is {f(p['opening_w'])} wide with straight sides {f(p['spring_h'])} tall and a semicircular top; "
        f"pillars {f(p['pillar_w'])} wide; wall {f(p['depth'])} thick with {f(p['margin'])} of solid wall above the "
        f"arch crown."
    )
    return p1, p2


def _plan_stairs(p, f, pick):
    n = p["steps"]
    p1 = f"A {p['size']} staircase: {_w(n)} solid box steps rising evenly from the front toward the back" + (
        ", with a handrail on posts along the right side." if p["railing"] else ", with no railing."
    )
    p2 = (
        f"{_w(n).capitalize()} steps, each {f(1.0 / n)} high and {f(p['depth'] / n)} deep, {f(p['width'])} wide, "
        f"filled solid down to the floor; total run {f(p['depth'])} from the bottom step at the front to the top "
        f"step at the back."
        + (f" Thin posts {f(p['rail_h'])} tall stand on each step, topped by a sloping rail." if p["railing"] else "")
    )
    return p1, p2


def _plan_ring(p, f, pick):
    p1 = f"A {p['band']} ring standing on its edge: one torus band" + (
        " with a gemstone in a small setting on top." if p["gem"] else " with nothing on it, a plain band."
    )
    p2 = (
        f"One torus about {f(1.0)} across with a round tube {f(2 * p['band_r'])} thick, standing vertically on the "
        f"ground with its hole facing the front."
        + (
            f" A faceted gem {f(2 * p['gem_r'])} wide sits on a tapered setting at the top."
            if p["gem"]
            else " The band has an even thickness all around."
        )
    )
    return p1, p2


def _plan_rocket(p, f, pick):
    n = p["fins"]
    p1 = (
        f"A rocket: one upright cylindrical body with a rounded nose cone, a small nozzle, {_w(n)} fins around the base"
        + (" and two side boosters." if p["boosters"] else ", no boosters.")
    )
    p2 = (
        f"Body {f(2 * p['body_r'])} across and {f(p['body_h'])} tall, nose {f(p['nose_h'])} tall. {_w(n).capitalize()} "
        f"thin swept fins {f(p['fin_h'])} tall reach {f(p['fin_span'])} outward and down to the ground, evenly "
        f"spaced around the tail; a short flared nozzle sits under the body."
        + (" Boosters are slim cylinders with cone tips on the left and right." if p["boosters"] else "")
    )
    return p1, p2


def _plan_car(p, f, pick):
    cab = {
        "sedan": "a sloped cabin in the middle",
        "pickup": "a short cabin at the front and an open cargo bed behind",
        "van": "a tall cabin covering almost the whole length",
    }[p["style"]]
    p1 = f"A {p['style']} car: a long low box body, {cab}, four round wheels" + (
        " and a rear spoiler wing." if p["spoiler"] else ", no spoiler."
    )
    p2 = (
        f"Body {f(p['length'])} long, {f(p['width'])} wide and {f(p['body_h'])} tall above wheel height; cabin "
        f"{f(p['cabin_h'])} tall with slanted windshield. Wheels {f(2 * p['wheel_r'])} across on both sides, front and "
        f"rear." + (" A flat wing on two posts sits at the back." if p["spoiler"] else "")
    )
    return p1, p2


def _plan_ladder(p, f, pick):
    n = p["rungs"]
    p1 = (
        f"A {p['size']} ladder standing upright: two parallel vertical rails joined by {_w(n)} evenly spaced "
        "horizontal rungs."
    )
    p2 = (
        f"Rails {f(p['rail'])} square and {f(1.0)} tall, {f(p['width'])} apart. {_w(n).capitalize()} round rungs "
        f"{f(2 * p['rung_r'])} thick, the first {f(p['first'])} above the ground, the last {f(p['last'])} below "
        "the top."
    )
    return p1, p2


def _plan_fence(p, f, pick):
    n, k = p["posts"], p["rails"]
    p1 = (
        f"A straight fence section: {_w(n)} upright posts in a row, evenly spaced, joined by {_w(k)} horizontal "
        f"rail{'s' if k > 1 else ''} running through them."
    )
    p2 = (
        f"Section {f(1.0)} long; posts {f(p['post'])} square and {f(p['height'])} tall"
        + (" with pointed tops" if p["pointed"] else " with flat tops")
        + f"; {_w(k)} rail{'s' if k > 1 else ''} {f(p['rail_t'])} thick span the full length"
        + (" at mid height" if k == 1 else ", spread evenly between low and high")
        + ", passing through every post."
    )
    return p1, p2


def _plan_windmill(p, f, pick):
    n = p["blades"]
    p1 = (
        f"A windmill: a tapered round tower with a {p['roof']} roof, a hub on the front near the top carrying "
        f"{_w(n)} long flat blades arranged like a star."
    )
    p2 = (
        f"Tower {f(2 * p['base_r'])} wide at the base, narrowing to {p['taper']:.2f} of that, {f(p['tower_h'])} tall. "
        f"{_w(n).capitalize()} blades {f(p['blade_len'])} long and {f(p['blade_w'])} wide radiate evenly from the hub "
        f"in the front plane. A door is cut at the bottom."
    )
    return p1, p2


PLANS = {
    "chair": _plan_chair,
    "table": _plan_table,
    "stool": _plan_stool,
    "bench": _plan_bench,
    "bed": _plan_bed,
    "bookshelf": _plan_bookshelf,
    "mug": _plan_mug,
    "bottle": _plan_bottle,
    "vase": _plan_vase,
    "lamp": _plan_lamp,
    "tree": _plan_tree,
    "pine_tree": _plan_pine,
    "mushroom": _plan_mushroom,
    "cactus": _plan_cactus,
    "snowman": _plan_snowman,
    "house": _plan_house,
    "tower": _plan_tower,
    "arch": _plan_arch,
    "stairs": _plan_stairs,
    "ring": _plan_ring,
    "rocket": _plan_rocket,
    "car": _plan_car,
    "ladder": _plan_ladder,
    "fence": _plan_fence,
    "windmill": _plan_windmill,
}


def make_plans(family: str, params: dict, longest: float, rng: np.random.Generator) -> tuple[str, str]:
    """(plan1, plan2) for a sample; lengths in plan2 are fractions of ``longest`` (the largest side)."""

    def f(v):
        return f"{v / longest:.2f}"

    def pick(*options):
        return str(options[int(rng.integers(len(options)))])

    return PLANS[family](params, f, pick)
