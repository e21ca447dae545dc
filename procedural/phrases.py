"""The v1 wording's attribute phrases and family nouns (the shipped demo model's captions, kept
byte for byte; :mod:`ar3d.procedural.captions` fills templates with them, and
:mod:`ar3d.procedural.wording` holds v2's).

Variants are "A:text" (adjective before the noun) or "W:text" (clause after it); {n} is a count
written as a word or in digits, {s} a plural s.
"""

from __future__ import annotations

# Counts written as words in captions and plans (both wordings); larger counts stay digits.
NUM_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def number_word(n: int) -> str:
    """``n`` as a word ("four"), or as digits where no word is listed."""
    return NUM_WORDS[n] if 0 <= n < len(NUM_WORDS) else str(n)


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
