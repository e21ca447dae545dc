"""Caption wording "v2" (issue #21): the ways a person words each family and attribute.

Why: the v1 captions (the shipped demo model's data, :mod:`.captions`) wrote counts mostly as
words and knew few synonyms, so "a ladder with 6 rungs" came out as a snowman while "a tall
ladder with six rungs" was right, and "a table lamp" came out as a table. v2 writes every count
as digits or words (half and half), adds the synonyms people type ("steps"/"stairs", "rungs"/
"steps", "table lamp"/"desk lamp"/"floor lamp" — the lamp's noun carries its size, so a lamp
caption says "lamp" and no table caption does), and more templates.

Variants are "A:text" (adjective before the noun), "W:text" (clause after it) or "N:text" (the
noun itself: lamp sizes, car styles); ``{n}`` is the count, ``{s}``/``{es}`` a plural ending and
``{a}`` an article for one (mushroom caps).

Held-out wording (test split only, fixed lists, the same for every seed so a training set and a
test set made with different seeds never share them): :data:`HELDOUT_PHRASES`,
:data:`HELDOUT_NOUNS`, and the generic templates 17 and 23 (the v1 rule: index 5 mod 6). A test
caption draws each attribute's phrase and its noun from the held-out list with probability 1/2
where the list has one, and always uses a held-out template.
"""

from __future__ import annotations

import numpy as np

from .phrases import NUM_WORDS

__all__ = ["PHRASES_V2", "HELDOUT_PHRASES", "NOUNS_V2", "HELDOUT_NOUNS", "EXTRA_GENERIC_TEMPLATES", "NAMED_ALWAYS",
           "describe_v2"]


# generic templates 12 … 23, appended to captions.GENERIC_TEMPLATES for v2 (17 and 23: test only)
EXTRA_GENERIC_TEMPLATES = (
    "create a {adj} {noun} {with}",
    "show me a {adj} {noun} {with}",
    "a 3D {adj} {noun} {with}",
    "please make a {adj} {noun} {with}",
    "a model of a {adj} {noun} {with}",
    "can I get a {adj} {noun} {with}?",  # test only
    "build a {adj} {noun} {with}",
    "a detailed {adj} {noun} {with}",
    "{adj} {noun} {with}, 3D model",
    "a {adj} {noun} {with}, centred",
    "design a {adj} {noun} {with}",
    "I'd like a {adj} {noun} {with}",  # test only
)


def _yes_no(yes, no):
    return {True: yes, False: no}


def _count(values, variants, extra=None):
    """The same {n} variants for every count value, plus value-specific ones ("a pair of")."""
    extra = extra or {}
    return {v: list(variants) + list(extra.get(v, [])) for v in values}


SIZE_TS = {"tall": ["A:tall", "A:tall slim"], "short": ["A:short", "A:short wide"]}

PHRASES_V2 = {
    "chair": {
        "legs": _count((3, 4), ["A:{n}-legged", "W:with {n} legs", "W:on {n} legs", "W:standing on {n} legs",
                                "W:with {n} wooden legs"]),  # fmt: skip
        "armrests": _yes_no(
            ["W:with armrests", "W:with arms on both sides", "W:with armrests on the sides", "W:with arm rests"],
            ["A:armless", "W:without armrests", "W:with no armrests", "W:without arms"],
        ),
        "size": {
            "tall": ["A:tall", "A:high-backed", "W:with a tall backrest", "W:with a high back", "W:with a tall back"],
            "short": ["A:short", "A:low-backed", "W:with a low backrest", "W:with a short back", "A:low"],
        },
    },
    "table": {
        "legs": _count((3, 4, 6), ["A:{n}-legged", "W:with {n} legs", "W:on {n} legs", "W:standing on {n} legs"]),
        "size": {
            "tall": ["A:tall", "A:high", "A:tall bar-height", "A:bar-height"],
            "short": ["A:short", "A:low", "A:short coffee-height", "A:coffee-height"],
            "wide": ["A:wide", "A:long wide", "A:wide rectangular", "A:broad"],
        },
    },
    "stool": {
        "legs": _count((3, 4), ["A:{n}-legged", "W:with {n} legs", "W:on {n} splayed legs", "W:on {n} legs"]),
        "size": {"tall": ["A:tall", "A:tall high", "A:high"], "short": ["A:short", "A:low", "A:short little"]},
        "footrest": _yes_no(
            ["W:with a footrest ring", "W:with a round footrest", "W:with a foot ring", "W:with a footrest"],
            ["W:without a footrest", "W:with no footrest"],
        ),
    },
    "bench": {
        "legs": _count((4, 6), ["A:{n}-legged", "W:with {n} legs", "W:on {n} legs"]),
        "backrest": _yes_no(
            ["W:with a backrest", "W:with a back rest", "W:with a back"],
            ["A:backless", "W:without a backrest", "W:with no backrest"],
        ),
        "size": {"long": ["A:long", "A:long narrow"], "short": ["A:short", "A:short compact", "A:compact"]},
    },
    "bed": {
        "pillows": _count(
            (1, 2), ["W:with {n} pillow{s}"], {1: ["W:with a single pillow"], 2: ["W:with a pair of pillows"]}
        ),
        "footboard": _yes_no(
            ["W:with a footboard", "W:with a headboard and a footboard", "W:with a foot board"],
            ["W:without a footboard", "W:with no footboard", "W:with only a headboard"],
        ),
        "size": {
            "single": ["A:single", "A:narrow single", "A:twin-size", "A:twin"],
            "double": ["A:double", "A:wide double", "A:queen-size double", "A:queen-size"],
        },
    },
    "bookshelf": {
        "shelves": _count((2, 3, 4, 5), ["W:with {n} shelves", "A:{n}-shelf", "W:with {n} shelf levels"]),
        "size": {"tall": ["A:tall", "A:tall narrow"], "wide": ["A:wide", "A:wide low"]},
        "back": _yes_no(
            ["W:with a back panel", "A:closed-back", "W:with a solid back"],
            ["A:open-backed", "W:without a back panel", "W:with no back panel", "A:open-back"],
        ),
    },
    "mug": {
        "handle": _yes_no(
            ["W:with a handle", "W:with a round handle", "W:with a loop handle"],
            ["A:handleless", "W:without a handle", "W:with no handle"],
        ),
        "size": {"tall": ["A:tall", "A:tall large"], "short": ["A:short", "A:short squat", "A:squat"]},
    },
    "bottle": {
        "neck": {
            "long": ["W:with a long neck", "A:long-necked", "W:with a long thin neck"],
            "short": ["W:with a short neck", "A:short-necked", "W:with a stubby neck"],
        },
        "body": {
            "round": ["A:round", "W:with a round cylindrical body", "W:with a round body", "A:cylindrical"],
            "square": ["A:square", "W:with a square body", "A:square-bodied", "A:boxy"],
        },
        "cap": _yes_no(
            ["W:with a cap", "W:with a screw cap", "A:capped", "W:with a lid"],
            ["W:without a cap", "A:uncapped", "W:with no cap", "A:open"],
        ),
    },
    "vase": {
        "handles": _count((2,), ["W:with {n} handles", "A:{n}-handled"], {2: ["W:with a pair of handles"]})
        | {0: ["W:without handles", "W:with no handles", "A:handleless"]},
        "shape": {
            "round": ["A:round", "A:round bulbous", "A:round-bellied", "A:bulbous"],
            "slender": ["A:slender", "A:tall slender", "A:thin slender"],
        },
    },
    "lamp": {
        "size": {
            "tall": ["N:floor lamp", "N:standing lamp", "N:tall floor lamp", "N:tall lamp", "N:tall standing lamp"],
            "short": ["N:table lamp", "N:desk lamp", "N:short desk lamp", "N:small table lamp", "N:short lamp"],
        },
        "shade": {
            "cone": ["W:with a cone shade", "W:with a conical lampshade", "A:cone-shaded",
                     "W:with a cone-shaped shade"],  # fmt: skip
            "cylinder": ["W:with a cylinder shade", "W:with a cylindrical lampshade",
                         "W:with a drum-shaped cylinder shade", "W:with a drum shade"],  # fmt: skip
        },
        "base": {
            "round": ["W:on a round base", "W:with a round base", "W:with a circular base"],
            "square": ["W:on a square base", "W:with a square base"],
        },
    },
    "tree": {
        "crown": {
            "single": ["W:with a single round crown", "W:with one round crown", "W:with a single crown",
                       "W:with a round crown"],  # fmt: skip
            "cluster": ["W:with a cluster of round clumps", "W:with a crown made of a cluster of blobs",
                        "W:with a clustered crown", "W:with a bushy clustered crown"],  # fmt: skip
        },
        "size": SIZE_TS,
    },
    "pine_tree": {
        "tiers": _count((2, 3, 4), ["W:with {n} tiers", "A:{n}-tier", "W:with {n} layers of branches",
                                    "W:made of {n} stacked cones", "A:{n}-tiered"]),  # fmt: skip
        "size": SIZE_TS,
    },
    "mushroom": {
        "cap": {
            "dome": ["A:dome-capped", "W:with {a}dome-shaped cap{s}", "W:with {a}round dome cap{s}", "A:round-capped"],
            "flat": ["A:flat-capped", "W:with {a}flat cap{s}", "W:with {a}flat disc cap{s}", "A:flat-topped"],
        },
    },
    "cactus": {
        "arms": _count((1, 2, 3), ["W:with {n} arm{s}", "A:{n}-armed", "W:with {n} branch{es} curving up",
                                   "W:with {n} side arm{s}"], {1: ["W:with a single arm"]}),  # fmt: skip
        "pot": _yes_no(
            ["W:in a pot", "W:planted in a pot", "A:potted", "W:in a flowerpot"],
            ["W:without a pot", "W:growing from the ground", "W:with no pot", "W:planted in the ground"],
        ),
    },
    "snowman": {
        "balls": _count((2, 3), ["W:made of {n} snowballs", "W:with {n} stacked balls", "A:{n}-ball",
                                 "W:made of {n} balls of snow", "W:with {n} snowballs"]),  # fmt: skip
        "hat": _yes_no(
            ["W:wearing a top hat", "W:with a hat", "W:with a top hat", "W:in a top hat"],
            ["W:without a hat", "A:hatless", "W:with no hat", "A:bareheaded"],
        ),
        "arms": _yes_no(
            ["W:with stick arms", "W:with twig arms", "W:with two stick arms", "W:with branch arms"],
            ["W:without arms", "A:armless", "W:with no arms"],
        ),
    },
    "house": {
        "windows": _count((1, 2, 3, 4), ["W:with {n} front window{s}", "W:with {n} window{s}", "A:{n}-window"],
                          {1: ["W:with a single window"]}),  # fmt: skip
        "roof": {
            "gable": ["W:with a gable roof", "W:with a pitched roof", "A:gable-roofed", "W:with a triangular roof",
                      "W:with a peaked roof"],  # fmt: skip
            "flat": ["W:with a flat roof", "A:flat-roofed"],
        },
        "chimney": _yes_no(
            ["W:with a chimney", "W:with a chimney on the roof"], ["W:without a chimney", "W:with no chimney"]
        ),
    },
    "tower": {
        "tiers": _count((2, 3, 4), ["W:with {n} tiers", "A:{n}-tier", "W:with {n} stacked levels", "A:{n}-storey",
                                    "A:{n}-story", "W:with {n} levels"]),  # fmt: skip
        "top": {
            "spire": ["W:with a pointed spire", "W:topped by a cone spire", "A:spired", "W:with a spire"],
            "battlements": ["W:with battlements", "W:topped by crenellated battlements", "A:crenellated",
                            "W:with crenellations"],  # fmt: skip
        },
    },
    "arch": {
        "openings": _count((1, 2, 3), ["W:with {n} opening{s}", "W:with {n} arched opening{s}"],
                           {1: ["A:single", "W:with a single opening"], 2: ["A:double"], 3: ["A:triple"]}),  # fmt: skip
        "size": {"tall": ["A:tall", "A:tall narrow", "A:high"], "wide": ["A:wide", "A:wide low", "A:broad"]},
    },
    "stairs": {
        "steps": _count(range(3, 9), ["W:with {n} steps", "A:{n}-step", "W:with {n} stairs"]),
        "railing": _yes_no(
            ["W:with a railing", "W:with a handrail", "W:with a hand rail on one side", "W:with a banister"],
            ["W:without a railing", "W:with no railing", "W:without handrail", "W:with no handrail"],
        ),
        "size": {"wide": ["A:wide", "A:broad"], "narrow": ["A:narrow", "A:slim"]},
    },
    "ring": {
        "gem": _yes_no(
            ["W:with a gem", "W:with a gemstone on top", "W:set with a gem", "W:with a diamond", "W:with a jewel"],
            ["W:without a gem", "A:plain", "W:with no gemstone"],
        ),
        "band": {
            "thin": ["A:thin", "W:with a thin band", "A:slim"],
            "thick": ["A:thick", "W:with a thick band", "A:chunky thick", "A:chunky"],
        },
    },
    "rocket": {
        "fins": _count((3, 4), ["W:with {n} fins", "A:{n}-finned", "W:with {n} tail fins",
                                "W:with {n} fins at the base"]),  # fmt: skip
        "boosters": _yes_no(
            ["W:with side boosters", "W:with two side boosters", "W:with boosters", "W:with booster rockets"],
            ["W:without boosters", "W:with no side boosters", "W:with no boosters"],
        ),
    },
    "car": {
        "style": {
            "sedan": ["N:sedan", "N:sedan car", "N:saloon car"],
            "pickup": ["N:pickup truck", "N:pickup", "N:truck"],
            "van": ["N:van", "N:minivan", "N:delivery van"],
        },
        "spoiler": _yes_no(
            ["W:with a rear spoiler", "W:with a spoiler", "W:with a rear wing"],
            ["W:without a spoiler", "W:with no spoiler"],
        ),
    },
    "ladder": {
        "rungs": _count(range(3, 9), ["W:with {n} rungs", "A:{n}-rung", "W:with {n} steps between the rails",
                                      "W:with {n} steps", "W:with {n} rungs between the rails"]),  # fmt: skip
        "size": {"tall": ["A:tall", "A:tall narrow"], "short": ["A:short", "A:short wide", "A:small"]},
    },
    "fence": {
        "posts": _count(range(3, 8), ["W:with {n} posts", "A:{n}-post", "W:with {n} upright posts",
                                      "W:with {n} fence posts"]),  # fmt: skip
        "rails": _count((1, 2, 3), ["W:with {n} horizontal rail{s}", "W:with {n} rail{s}", "W:with {n} crossbar{s}",
                                    "W:with {n} cross rail{s}"], {1: ["W:with a single rail"]}),  # fmt: skip
    },
    "windmill": {
        "blades": _count((3, 4, 6), ["W:with {n} blades", "A:{n}-bladed", "W:with {n} sails"]),
        "roof": {
            "cone": ["W:with a cone roof", "W:with a pointed roof", "W:with a conical roof"],
            "dome": ["W:with a dome roof", "W:with a rounded dome roof", "W:with a domed roof"],
        },
    },
}

# Test-only phrasings, per family / attribute / value (a list for every value of a count).
_HELD_COUNT = {
    ("chair", "legs"): "W:resting on {n} legs",
    ("table", "legs"): "W:resting on {n} legs",
    ("stool", "legs"): "W:standing on {n} legs",
    ("bench", "legs"): "W:standing on {n} legs",
    ("bed", "pillows"): "W:with {n} pillow{s} at the head",
    ("bookshelf", "shelves"): "W:with {n} tiers of shelves",
    ("pine_tree", "tiers"): "W:with {n} levels of branches",
    ("cactus", "arms"): "W:with {n} arm{s} reaching up",
    ("snowman", "balls"): "W:built from {n} snowballs",
    ("house", "windows"): "W:with {n} window{s} on the front",
    ("tower", "tiers"): "W:with {n} floors",
    ("arch", "openings"): "W:with {n} passage{s}",
    ("stairs", "steps"): "W:with {n} treads",
    ("rocket", "fins"): "W:with {n} stabilizer fins",
    ("ladder", "rungs"): "A:{n}-step",
    ("fence", "posts"): "W:with {n} vertical posts",
    ("fence", "rails"): "W:with {n} horizontal bar{s}",
    ("windmill", "blades"): "W:with {n} vanes",
}
HELDOUT_PHRASES = {
    "chair": {"armrests": {True: ["W:with armrests on both sides"], False: ["W:with no arms"]},
              "size": {"tall": ["A:tall-backed"], "short": ["A:short-backed"]}},
    "table": {"size": {"tall": ["A:counter-height"], "short": ["A:squat"], "wide": ["A:extra-wide"]}},
    "stool": {"size": {"short": ["A:short squat"]},
              "footrest": {True: ["W:with a ring to rest your feet on"], False: ["A:footrest-free"]}},
    "bench": {"backrest": {True: ["A:high-backed"], False: ["W:with no back"]},
              "size": {"long": ["A:extra-long"]}},
    "bed": {"footboard": {True: ["W:with boards at both ends"], False: ["W:with just a headboard"]},
            "size": {"single": ["A:single-size"], "double": ["A:king-size"]}},
    "bookshelf": {"size": {"tall": ["A:high narrow"], "wide": ["A:broad"]},
                  "back": {True: ["W:closed at the back"], False: ["W:open at the back"]}},
    "mug": {"handle": {True: ["W:with a handle on the side"], False: ["W:without any handle"]},
            "size": {"short": ["A:stubby"]}},
    "bottle": {"neck": {"long": ["A:long-neck"], "short": ["A:short-neck"]},
               "body": {"round": ["W:with a cylindrical body"], "square": ["W:with a boxy body"]},
               "cap": {True: ["W:closed with a cap"], False: ["W:with an open top"]}},
    "vase": {"handles": {0: ["W:without any handles"], 2: ["W:with handles on both sides"]},
             "shape": {"round": ["A:pot-bellied"], "slender": ["A:skinny"]}},
    "lamp": {"size": {"tall": ["N:floor-standing lamp"], "short": ["N:bedside lamp"]},
             "shade": {"cone": ["W:with a tapered lampshade"], "cylinder": ["W:with a tube-shaped shade"]},
             "base": {"round": ["W:on a disc base"], "square": ["W:on a square foot"]}},
    "tree": {"crown": {"single": ["W:with one big ball of leaves"], "cluster": ["W:with clumps of leaves"]},
             "size": {"tall": ["A:towering"], "short": ["A:stubby"]}},
    "pine_tree": {"size": {"tall": ["A:towering"], "short": ["A:stubby"]}},
    "mushroom": {"cap": {"dome": ["W:with {a}domed cap{s}"], "flat": ["W:with {a}disc-shaped cap{s}"]}},
    "cactus": {"pot": {True: ["W:growing in a pot"], False: ["W:standing in the sand"]}},
    "snowman": {"hat": {True: ["W:wearing a hat"], False: ["A:bare-headed"]},
                "arms": {True: ["W:with arms made of sticks"], False: ["W:with no stick arms"]}},
    "house": {"roof": {"gable": ["W:with a sloping roof"]},
              "chimney": {True: ["W:with a brick chimney"], False: ["W:with no chimney at all"]}},
    "tower": {"top": {"spire": ["W:topped by a spire"], "battlements": ["W:with a castle parapet"]}},
    "arch": {"size": {"tall": ["A:lofty"], "wide": ["A:squat wide"]}},
    "stairs": {"railing": {True: ["W:with a rail to hold on to"], False: ["W:without a banister"]},
               "size": {"wide": ["A:extra-wide"], "narrow": ["A:thin narrow"]}},
    "ring": {"gem": {True: ["W:with a stone on top"], False: ["W:without any stone"]},
             "band": {"thin": ["A:delicate thin"], "thick": ["A:heavy"]}},
    "rocket": {"boosters": {True: ["W:with strap-on boosters"], False: ["W:without side boosters"]}},
    "car": {"style": {"sedan": ["N:four-door sedan"], "pickup": ["N:pick-up truck"], "van": ["N:camper van"]},
            "spoiler": {True: ["W:with a wing on the back"], False: ["W:with no rear wing"]}},
    "ladder": {"size": {"tall": ["A:towering"], "short": ["A:stubby"]}},
    "windmill": {"roof": {"cone": ["W:with a cone-shaped cap"], "dome": ["W:with a rounded roof"]}},
}  # fmt: skip
for (_fam, _attr), _text in _HELD_COUNT.items():
    for _v in PHRASES_V2[_fam][_attr]:
        if _v != 0:  # vase "no handles" is not a count phrase
            HELDOUT_PHRASES.setdefault(_fam, {}).setdefault(_attr, {}).setdefault(_v, []).append(_text)

NOUNS_V2 = {
    "chair": ["chair", "dining chair", "side chair", "kitchen chair"],
    "table": ["table", "dining table", "kitchen table"],
    "stool": ["stool", "stool", "bar stool"],
    "bench": ["bench", "wooden bench", "park bench"],
    "bed": ["bed"],
    "bookshelf": ["bookshelf", "bookcase", "shelf unit", "shelving unit"],
    "mug": ["mug", "cup"],
    "bottle": ["bottle"],
    "vase": ["vase", "urn vase", "urn"],
    "tree": ["tree", "deciduous tree", "oak tree"],
    "pine_tree": ["pine tree", "fir tree", "conifer tree", "pine", "fir"],
    "cactus": ["cactus"],
    "snowman": ["snowman", "snow man"],
    "house": ["house", "cottage"],
    "tower": ["tower", "castle tower", "turret"],
    "arch": ["arch", "archway", "arcade"],
    "stairs": ["staircase", "flight of stairs", "stairs", "stairway", "set of steps"],
    "ring": ["ring", "finger ring"],
    "rocket": ["rocket", "space rocket", "rocket ship", "spaceship"],
    "ladder": ["ladder"],
    "fence": ["fence", "fence section"],
    "windmill": ["windmill"],
    # the lamp's and the car's nouns carry their size and style ("N:" variants); these plain ones
    # serve only captions that leave that attribute out (partial captions: "a lamp", "a car")
    "lamp": ["lamp"],
    "car": ["car"],
}
# Attributes a caption cannot leave out (partial captions name the others at will): the
# mushroom's count is its noun phrase ("three mushrooms", "a single mushroom").
NAMED_ALWAYS = {"mushroom": ("count",)}
HELDOUT_NOUNS = {
    "chair": ["desk chair"],
    "table": ["dinner table"],
    "stool": ["counter stool"],
    "bookshelf": ["book shelf"],
    "mug": ["teacup"],
    "bottle": ["flask"],
    "tree": ["broadleaf tree"],
    "pine_tree": ["spruce tree"],
    "house": ["hut"],
    "tower": ["watchtower"],
    "stairs": ["set of stairs"],
    "rocket": ["spacecraft"],
    "fence": ["fence panel"],
}
MUSHROOM_NOUNS = {  # the mushroom's noun phrase carries its count
    "one": ["a mushroom", "a single mushroom", "one mushroom", "1 mushroom", "a toadstool"],
    "many": ["a group of {n} mushrooms", "{n} mushrooms", "a cluster of {n} mushrooms", "{n} toadstools"],
    "pair": ["a pair of mushrooms"],
    "heldout_one": ["a lone mushroom"],
    "heldout_many": ["a clump of {n} mushrooms"],
}


def options(family: str, attr: str, value, split: str) -> tuple[list[str], list[str]]:
    """(ordinary, held-out) variants of an attribute value; the train split gets no held-out ones."""
    ordinary = PHRASES_V2[family][attr][value]
    held = HELDOUT_PHRASES.get(family, {}).get(attr, {}).get(value, []) if split == "test" else []
    return list(ordinary), list(held)


def _choose(rng: np.random.Generator, ordinary: list, held: list):
    if held and rng.random() < 0.5:
        return held[int(rng.integers(len(held)))]
    return ordinary[int(rng.integers(len(ordinary)))]


def count_text(n: int, rng: np.random.Generator) -> str:
    """A count as a word or in digits, half and half."""
    return NUM_WORDS[n] if rng.random() < 0.5 else str(n)


def fill(text: str, n, number: str) -> str:
    text = text.replace("{n}", number)
    plural = not (isinstance(n, int) and not isinstance(n, bool) and n == 1)
    text = text.replace("{s}", "s" if plural else "").replace("{es}", "es" if plural else "")
    return text.replace("{a}", "" if plural else "a ")


def describe_v2(
    family: str,
    attrs: dict,
    rng: np.random.Generator,
    split: str,
    force: dict | None = None,
    digits: bool | None = None,
) -> tuple[str, list[str], list[str]]:
    """(noun, adjectives, clauses) naming every attribute once, drawn from the v2 variants.
    ``force`` (attribute -> variant; "count" -> the mushroom's noun phrase) and ``digits`` (counts
    as digits / words) pin the wording, for tests that try every variant."""
    force = force or {}

    def number(n):
        if digits is None:
            return count_text(n, rng)
        return str(n) if digits else NUM_WORDS[n]

    adjs, withs, noun = [], [], None
    for key, value in attrs.items():
        if family == "mushroom" and key == "count":
            continue
        choice = force.get(key) or _choose(rng, *options(family, key, value, split))
        kind, text = choice.split(":", 1)
        n = attrs["count"] if family == "mushroom" else value
        text = fill(text, n, number(n) if "{n}" in text else "")
        if kind == "N":
            noun = text
        else:
            (adjs if kind == "A" else withs).append(text)
    if noun is None and family != "mushroom":
        held = HELDOUT_NOUNS.get(family, []) if split == "test" else []
        noun = _choose(rng, NOUNS_V2[family], held)
    if family == "mushroom":
        c = attrs["count"]
        held = MUSHROOM_NOUNS["heldout_one" if c == 1 else "heldout_many"] if split == "test" else []
        ordinary = MUSHROOM_NOUNS["one"] if c == 1 else MUSHROOM_NOUNS["many"]
        ordinary = ordinary + (MUSHROOM_NOUNS["pair"] if c == 2 else [])
        text = force.get("count") or _choose(rng, ordinary, held)
        noun = fill(text, c, number(c) if "{n}" in text else "")
    return noun, adjs, withs
