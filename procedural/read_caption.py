"""Read a caption or a prompt back into a family and its attributes ("a ladder with 6 rungs" ->
``("ladder", {"rungs": 6})``).

Why: to check that every caption wording (v1 and v2, :mod:`.captions`, :mod:`.wording`) says
what its sample is, to tell a prompt's family apart from a confusable one ("a table lamp" is a
lamp, "a table" a table), and to give the judges a prompt's ground truth. The patterns here are
written by hand, apart from the generating tables, so a round trip tests both.

The family is the family noun that starts first in the text (the head noun: "a stool with a foot
ring" is a stool), the longest at that position ("table lamp" over "table"); a noun right after a
count is a count's unit, not the object ("a 6-step ladder"). Counts are digits or words, with
up to two modifiers before the unit ("4 splayed legs"); yes/no attributes check the negations
first ("without armrests" before "armrests"). Attributes the text does not mention are absent.
"""

from __future__ import annotations

import functools
import re

from .phrases import NUM_WORDS

__all__ = ["FAMILY_NOUNS", "read_caption", "read_family", "read_attributes", "families_in"]

NUM = r"(?:\d+|" + "|".join(NUM_WORDS) + r")"
_NUM_BEFORE = re.compile(r"\b" + NUM + r"[\s-]+$", re.I)

FAMILY_NOUNS = {
    "chair": ["chair", "armchair", "dining chair", "side chair", "kitchen chair", "desk chair"],
    "table": ["table", "desk", "dining table", "kitchen table", "coffee table", "dinner table"],
    "stool": ["stool", "bar stool", "counter stool"],
    "bench": ["bench", "park bench"],
    "bed": ["bed"],
    "bookshelf": ["bookshelf", "bookshelves", "bookcase", "book shelf", "shelf unit", "shelving unit", "shelf",
                  "shelves"],  # fmt: skip
    "mug": ["mug", "cup", "teacup", "coffee cup", "tea cup"],
    "bottle": ["bottle", "flask"],
    "vase": ["vase", "urn"],
    "lamp": ["lamp", "floor lamp", "standing lamp", "floor-standing lamp", "table lamp", "desk lamp", "bedside lamp",
             "reading lamp"],  # fmt: skip
    "tree": ["tree", "deciduous tree", "oak tree", "oak", "broadleaf tree"],
    "pine_tree": ["pine tree", "pine", "fir tree", "fir", "conifer tree", "conifer", "spruce tree", "spruce",
                  "christmas tree", "evergreen tree"],  # fmt: skip
    "mushroom": ["mushroom", "toadstool"],
    "cactus": ["cactus", "cacti", "saguaro"],
    "snowman": ["snowman", "snowmen", "snow man"],
    "house": ["house", "cottage", "hut"],
    "tower": ["tower", "castle tower", "turret", "watchtower"],
    "arch": ["arch", "archway", "arcade"],
    "stairs": ["staircase", "stairs", "stairway", "flight of stairs", "set of steps", "set of stairs", "steps"],
    "ring": ["ring", "finger ring"],
    "rocket": ["rocket", "space rocket", "rocket ship", "spaceship", "spacecraft"],
    "car": ["car", "sedan", "saloon car", "pickup truck", "pick-up truck", "pickup", "truck", "van", "minivan",
            "vehicle"],  # fmt: skip
    "ladder": ["ladder"],
    "fence": ["fence", "fence section", "fence panel"],
    "windmill": ["windmill", "wind mill"],
}

UNIT_NOUNS = {"steps", "stairs", "shelf", "shelves"}  # after a number they count parts: "a 6-step ladder"

_NOUN_RE = [
    (family, noun in UNIT_NOUNS, re.compile(r"\b" + re.escape(noun) + r"(?:s|es)?\b", re.I))
    for family, nouns in FAMILY_NOUNS.items()
    for noun in nouns
]


# "a short desk cone-shaded lamp" (v1): a lamp whose size word comes first
_LAMP_RE = re.compile(
    r"\b(?:table|desk|bedside|floor|standing)(?:[\s-]+(?!(?:with|and|a|an|the|on|of|or|in)\b)[a-z]+(?:-[a-z]+)?){0,2}?"
    r"[\s-]+lamps?\b",
    re.I,
)
_NOUN_RE.append(("lamp", False, _LAMP_RE))


def _mentions(text: str):
    """(start, -length, family) of every family noun that is not a count's unit."""
    out = []
    for family, unit, rx in _NOUN_RE:
        for m in rx.finditer(text):
            if unit and _NUM_BEFORE.search(text[: m.start()]):
                continue
            out.append((m.start(), -(m.end() - m.start()), family))
    return sorted(out)


def read_family(text: str) -> str | None:
    """The family of the head noun (the first family noun, the longest there), or None."""
    found = _mentions(text)
    return found[0][2] if found else None


def families_in(text: str) -> list[str]:
    """Every family whose noun ``text`` mentions, first mention first."""
    out = []
    for _, _, family in _mentions(text):
        if family not in out:
            out.append(family)
    return out


def _count(unit: str, extra: dict | None = None):
    """A count attribute: a number, up to two modifiers, the unit; ``extra``: value -> phrases."""
    rx = re.compile(
        r"\b(?P<n>" + NUM + r")"
        + r"(?:[\s-]+(?!(?:and|with|or|of|on|in)\b)[a-z]+(?:-[a-z]+)*){0,2}?"  # up to two modifiers
        + r"[\s-]+(?:" + unit + r")\b",
        re.I,
    )
    extra_rx = [(v, re.compile(p, re.I)) for v, p in (extra or {}).items()]

    def read(text):
        m = rx.search(text)
        if m:
            n = m.group("n").lower()
            return NUM_WORDS.index(n) if n in NUM_WORDS else int(n)
        for v, p in extra_rx:
            if p.search(text):
                return v
        return None

    return read


def _yes_no(yes: str, no: str):
    """A part present or not: the negations are checked first."""
    yes_rx, no_rx = re.compile(yes, re.I), re.compile(no, re.I)

    def read(text):
        if no_rx.search(text):
            return False
        return True if yes_rx.search(text) else None

    return read


def _one_of(**patterns):
    """A class (size, shape …): the one value whose pattern the text matches; None for none or several."""
    compiled = {v: re.compile(p, re.I) for v, p in patterns.items()}

    def read(text):
        hits = [v for v, rx in compiled.items() if rx.search(text)]
        return hits[0] if len(hits) == 1 else None

    return read


_LOW = r"\blow\b(?!-poly)"
_TALL_SHORT = _one_of(tall=r"\btall|\btowering", short=r"\bshort|\bstubby|\bsmall\b")

READERS = {
    "chair": {
        "legs": _count(r"legs?|legged"),
        "armrests": _yes_no(r"\barm", r"armless|without (?:any )?arm|no arms?\b|no armrests"),
        "size": _one_of(tall=r"\btall|\bhigh", short=r"\bshort|" + _LOW),
    },
    "table": {
        "legs": _count(r"legs?|legged"),
        "size": _one_of(tall=r"\btall|\bhigh\b|bar-height|counter-height", short=r"\bshort|coffee-height|squat|" + _LOW,
                        wide=r"\bwide|\bbroad"),  # fmt: skip
    },
    "stool": {
        "legs": _count(r"legs?|legged"),
        "size": _one_of(tall=r"\btall|\bhigh\b", short=r"\bshort|" + _LOW),
        "footrest": _yes_no(r"footrest|foot ring|rest your feet", r"without a footrest|no footrest|footrest-free"),
    },
    "bench": {
        "legs": _count(r"legs?|legged"),
        "backrest": _yes_no(r"back ?rest|\ba back\b|backed", r"backless|without a back|no back"),
        "size": _one_of(long=r"\blong\b|extra-long", short=r"\bshort|compact"),
    },
    "bed": {
        "pillows": _count(r"pillows?", {1: r"single pillow", 2: r"pair of pillows"}),
        "footboard": _yes_no(r"foot ?board|boards at both ends",
                             r"without a foot ?board|no foot ?board|only a headboard|just a headboard"),  # fmt: skip
        "size": _one_of(single=r"\bsingle\b(?!\s+pillow)|\btwin", double=r"\bdouble|queen|king"),
    },
    "bookshelf": {
        "shelves": _count(r"shelves|shelf|shelf levels|tiers of shelves"),
        "size": _one_of(tall=r"\btall|\bhigh", wide=r"\bwide|\bbroad"),
        "back": _yes_no(r"back panel|closed-back|solid back|closed at the back",
                        r"open-back|without a back|no back|open at the back"),  # fmt: skip
    },
    "mug": {
        "handle": _yes_no(r"handle", r"handleless|without (?:a|any) handle|no handle"),
        "size": _one_of(tall=r"\btall", short=r"\bshort|squat|stubby"),
    },
    "bottle": {
        "neck": _one_of(long=r"\blong(?:[- ]thin)?[- ]neck", short=r"\b(?:short|stubby)[- ]neck"),
        "body": _one_of(round=r"\bround|cylindrical", square=r"\bsquare|boxy"),
        "cap": _yes_no(r"\bcap\b|capped|\blid\b", r"without a (?:cap|lid)|uncapped|no (?:cap|lid)|\bopen\b"),
    },
    "vase": {
        "handles": _count(r"handles?|handled", {2: r"pair of handles|handles on both sides",
                                               0: r"without (?:any )?handles|no handles|handleless"}),  # fmt: skip
        "shape": _one_of(round=r"\bround|bulbous|bellied", slender=r"slender|skinny"),
    },
    "lamp": {
        "size": _one_of(tall=r"\btall|floor(?:-standing)? lamp|standing lamp",
                        short=r"\bshort|\bsmall\b|(?:table|desk|bedside) lamp"),  # fmt: skip
        "shade": _one_of(cone=r"\bcone|conical|tapered", cylinder=r"cylind|drum|tube"),
        "base": _one_of(round=r"(?:round|circular|disc) (?:base|foot)", square=r"square (?:base|foot)"),
    },
    "tree": {
        "crown": _one_of(single=r"single|one round|round crown|one big ball", cluster=r"cluster|clumps"),
        "size": _TALL_SHORT,
    },
    "pine_tree": {
        "tiers": _count(r"tiers?|tiered|layers|levels|stacked cones|cones"),
        "size": _TALL_SHORT,
    },
    "mushroom": {
        "count": _count(r"mushrooms|toadstools",
                        {2: r"pair of (?:[\w-]+ ){0,2}(?:mushrooms|toadstools)", 1: r"mushroom|toadstool"}),
        "cap": _one_of(dome=r"dome|round-capped", flat=r"\bflat|disc"),
    },
    "cactus": {
        "arms": _count(r"arms?|armed|branch(?:es)?", {1: r"single arm"}),
        "pot": _yes_no(r"in a (?:flower)?pot|potted",
                       r"without a pot|no pot|from the ground|in the ground|in the sand"),  # fmt: skip
    },
    "snowman": {
        "balls": _count(r"snowballs?|balls?(?: of snow)?"),
        "hat": _yes_no(r"\bhat\b", r"without a hat|hatless|no hat|bare-?headed"),
        "arms": _yes_no(r"stick arms|twig arms|branch arms|arms made of sticks",
                        r"without (?:stick )?arms|armless|no (?:stick )?arms"),  # fmt: skip
    },
    "house": {
        "windows": _count(r"windows?", {1: r"single window"}),
        "roof": _one_of(gable=r"gable|pitched|triangular roof|peaked|sloping", flat=r"\bflat"),
        "chimney": _yes_no(r"chimney", r"without a chimney|no chimney"),
    },
    "tower": {
        "tiers": _count(r"tiers?|tiered|levels|storey|story|storeys|stories|floors"),
        "top": _one_of(spire=r"spire", battlements=r"battlement|crenel|parapet"),
    },
    "arch": {
        "openings": _count(r"openings?|arched openings?|passages?|bays?|arches",
                           {1: r"\bsingle\b", 2: r"\bdouble\b", 3: r"\btriple\b"}),  # fmt: skip
        "size": _one_of(tall=r"\btall|\bhigh|lofty", wide=r"\bwide|\bbroad"),
    },
    "stairs": {
        "steps": _count(r"steps?|stairs|treads"),
        "railing": _yes_no(r"railing|handrail|hand rail|banister|rail to hold",
                           r"without (?:a )?(?:railing|handrail|banister|hand rail)|no (?:railing|handrail|banister)"),
        "size": _one_of(wide=r"\bwide|\bbroad", narrow=r"narrow|\bslim"),
    },
    "ring": {
        "gem": _yes_no(r"\bgem|diamond|jewel|stone on top",
                       r"without (?:a |any )?(?:gem|stone|jewel)|\bplain\b|no gem"),  # fmt: skip
        "band": _one_of(thin=r"\bthin|\bslim|delicate", thick=r"\bthick|chunky|heavy"),
    },
    "rocket": {
        "fins": _count(r"fins?|finned"),
        "boosters": _yes_no(r"booster", r"without (?:side )?boosters|no (?:side )?boosters"),
    },
    "car": {
        "style": _one_of(sedan=r"sedan|saloon", pickup=r"pick-?up|\btruck", van=r"\b(?:mini)?van\b|van-like"),
        "spoiler": _yes_no(r"spoiler|rear wing|wing on the back",
                           r"without a (?:rear )?(?:spoiler|wing)|no (?:rear )?(?:spoiler|wing)"),  # fmt: skip
    },
    "ladder": {
        "rungs": _count(r"rungs?|steps?|crossbars?"),
        "size": _TALL_SHORT,
    },
    "fence": {
        "posts": _count(r"posts?"),
        "rails": _count(r"rails?|crossbars?|bars?", {1: r"single rail"}),
    },
    "windmill": {
        "blades": _count(r"blades?|bladed|sails?|vanes?"),
        "roof": _one_of(cone=r"\bcone|pointed|conical", dome=r"dome|rounded"),
    },
}  # fmt: skip


def read_attributes(family: str, text: str) -> dict:
    """The attributes of ``family`` that ``text`` names (absent when not named or unclear)."""
    out = {}
    for attr, read in READERS[family].items():
        value = read(text)
        if value is not None:
            out[attr] = value
    return out


@functools.lru_cache(maxsize=4096)  # rewards ask again for the same prompts every step
def read_caption(text: str) -> tuple[str | None, dict]:
    """(family, attributes) that a caption or prompt names; (None, {}) without a family noun.
    Cached: do not change the returned dict."""
    family = read_family(text)
    return family, (read_attributes(family, text) if family else {})
