"""Regular expressions a v1 caption matches for each family/attribute/value.

Why: tests check that every caption mentions every attribute (and no other value of it); the
reader of both wordings is :mod:`ar3d.procedural.read_caption`.
"""

from __future__ import annotations

from .phrases import NUM_WORDS

__all__ = ["MENTIONS"]


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
