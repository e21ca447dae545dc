"""How many separate objects a prompt asks for (``expected_parts``), read off its wording."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PartCount", "expected_parts"]


@dataclass(frozen=True)
class PartCount:
    """How many separate objects a prompt asks for: ``lo``..``hi`` (None: no upper bound)."""

    lo: int
    hi: int | None
    reason: str = ""

    def contains(self, n: int) -> bool:
        return n >= self.lo and (self.hi is None or n <= self.hi)


_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
}  # fmt: skip
# "N of them" collectives whose members are separate (set of bowls) or may touch (stack of plates).
_SEVERAL = {"several", "multiple", "many", "various", "assorted", "numerous", "some", "few"}
_SEPARATE_GROUPS = {"set", "group", "collection", "row", "line", "cluster", "bunch", "family", "herd", "flock", "pack", "team"}
_TOUCHING_GROUPS = {"stack", "pile", "heap", "bundle", "tower"}
# Nouns that are plural in form but one object ("a pair of scissors" is one piece).
_PLURALIA_TANTUM = {
    "scissors", "glasses", "eyeglasses", "sunglasses", "spectacles", "goggles", "binoculars",
    "pants", "trousers", "jeans", "shorts", "leggings", "tights", "overalls", "pajamas",
    "pyjamas", "pliers", "tongs", "tweezers", "clippers", "shears", "headphones", "earphones",
    "earbuds", "stairs", "steps", "gallows", "barracks", "headquarters", "bellows", "news",
}  # fmt: skip
_ONE_STAIRCASE = {"stairs", "steps"}
_IRREGULAR_PLURALS = {"people", "men", "women", "children", "mice", "geese", "teeth", "feet", "dice", "oxen", "fish", "sheep", "deer"}
# Words that end the phrase naming the object(s): what follows describes them or their setting.
_HEAD_END = {
    "with", "without", "on", "in", "inside", "under", "over", "above", "below", "beside", "next",
    "near", "behind", "at", "by", "for", "from", "to", "into", "made", "having", "has", "that",
    "which", "who", "whose", "where", "featuring", "holding", "carrying", "wearing", "standing",
    "sitting", "topped", "covered", "containing", "filled", "like", "against", "atop", "around",
    "growing", "lying", "floating", "hanging", "resting", "placed", "arranged",
}  # fmt: skip
_WOULD = {"i'd", "we'd", "would", "d"}
_DETERMINERS = {"a", "an", "one", "the", "another", "some", "several", "pair", "couple", "set"}
_TOKEN = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*|[,.;:!?()\"]")


_NOT_PLURAL = {"its", "this", "was", "has", "does", "his", "hers", "ours", "yours", "theirs", "as", "always", "perhaps", "across", "towards", "sometimes", "less"}


def _is_plural(word: str) -> bool:
    if word in _IRREGULAR_PLURALS or word in _PLURALIA_TANTUM:
        return True
    if word in _NOT_PLURAL:
        return False
    return len(word) > 2 and word.endswith("s") and not word.endswith(("ss", "us", "is"))


def _number(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    return _NUMBERS.get(word)


def _conjuncts(head: list[str]) -> list[list[str]]:
    """Split at "and"/"plus" only where a new noun phrase starts ("a table and two chairs",
    not "a black and white cat")."""
    out, cur = [], []
    for j, w in enumerate(head):
        nxt = head[j + 1] if j + 1 < len(head) else ""
        if w in ("and", "plus") and cur and (nxt in _DETERMINERS or _number(nxt) is not None or nxt in _SEVERAL):
            out.append(cur)
            cur = []
        else:
            cur.append(w)
    if cur:
        out.append(cur)
    return out


def _count_phrase(words: list[str]) -> tuple[int, int | None]:
    """(lo, hi) objects named by one noun phrase. A quantifier counts when a plural noun follows
    it within a few words (adjectives between: "two dome-capped mushrooms")."""
    for j, w in enumerate(words):
        nxt = words[j + 1] if j + 1 < len(words) else ""
        after = words[j + 1 : j + 5]
        plural = next((x for x in after if _is_plural(x)), None)
        if plural is None:
            continue
        tantum = plural in _PLURALIA_TANTUM
        later = [m for m in map(_number, words[j + 2 :]) if m]
        n = _number(w)
        if n:
            if nxt == "pairs":
                return (n, n) if tantum else (2 * n, 2 * n)
            if nxt == "dozen":
                return 12 * n, 12 * n
            return n, n
        if w == "dozen":
            return 12, 12
        if w in ("pair", "couple") and nxt == "of":
            if tantum:  # a pair of scissors: one object
                return 1, 1
            return (later[0], later[0]) if later else (2, 2)
        if w == "trio" and nxt == "of":
            return 3, 3
        if w in _SEPARATE_GROUPS and nxt == "of":
            if plural in _ONE_STAIRCASE:  # "a set of stairs" is one staircase
                return 1, 1
            return (later[0], later[0]) if later else (2, None)
        if w in _TOUCHING_GROUPS and nxt == "of":
            return 1, None
        if w in _SEVERAL:
            return 2, None
    noun = words[-1]
    if _is_plural(noun) and noun not in _PLURALIA_TANTUM:
        return 1, None  # a bare plural ("chess pieces"): no opinion on the count
    return 1, 1


def expected_parts(prompt: str) -> PartCount:
    """The number of separate objects ``prompt`` asks for; 1 unless it names several.

    Reads only the phrase naming the object(s) — after any "label:" and up to the first
    punctuation or word such as "with", "on", "made", "that", "growing" — so counts of attributes ("a chair with four legs", "a tree
    made of three cones") are not counts of objects. In that phrase a number (word or digit)
    before a plural noun counts ("two mugs", "3 cubes"; "a 3-legged stool" and "a 3D model of
    a vase" do not), as do "a pair/couple of", "a dozen", "a set/group/row of" (2 or more, or
    the number given), "several/many/some" (2 or more); "a stack/pile of" may touch (1 or
    more). Phrases joined by "and" add up ("a table and two chairs": 3). Bare plurals ("chess
    pieces") give 1 or more; plural-form single objects ("a pair of scissors", "stairs") give 1.
    """
    tokens = _TOKEN.findall(prompt.lower().replace("&", " and "))
    head: list[str] = []
    for t in tokens:
        if t == ":":  # "3D shape: a pair of mugs" — the label before a colon names no object
            head = []
            continue
        if t == "like" and head and head[-1] in _WOULD:  # "I'd like a pair of …": a request, no object yet
            head = []
            continue
        if t in _HEAD_END or not t[0].isalnum():
            if head:
                break
            continue
        head.append(t)
    if not head:
        return PartCount(1, 1, "no object phrase found")
    lo, hi = 0, 0
    for words in _conjuncts(head):
        a, b = _count_phrase(words)
        lo += a
        hi = None if hi is None or b is None else hi + b
    lo = max(lo, 1)
    return PartCount(lo, hi, " ".join(head))
