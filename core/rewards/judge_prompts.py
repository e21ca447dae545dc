"""Every judge prompt, each with the parser of its answer right below it.

Prompts and parsers change together (a parser accepts exactly what its prompt asks for, plus
the usual ways a 7B model drifts from it: markdown bold, "4.5/5", a reasoning preamble, a
``<think>`` block), so they live in one place. The prompts are ours, written for 3D renders;
only UnifiedReward-2.0's output format (three "… Score (1-5): X" lines) and the 1.x / Think
"Final Score: X" ending are the models' own trained formats.

Each parser returns plain floats or raises ``ParseError`` with a message that says what was
missing; the reward turns that into a missing score carrying the raw text.
"""

from __future__ import annotations

import json
import re

NUM = r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)"


class ParseError(ValueError):
    """The judge's answer does not have the format its prompt asked for."""


# --- shared text clean-up ---------------------------------------------------------------------------
_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)


def strip_think(text: str) -> str:
    """The answer without ``<think>…</think>`` blocks. An unclosed ``<think>`` (the answer was
    cut at max_tokens) leaves only what came before it."""
    text = _THINK.sub(" ", text)
    cut = re.search(r"<think>", text, re.I)
    return text[: cut.start()] if cut else text


def clean_answer(text: str) -> str:
    """Think blocks, markdown emphasis, code fences and <answer> tags removed."""
    text = strip_think(text)
    text = re.sub(r"</?answer>", " ", text, flags=re.I)
    text = text.replace("**", "").replace("__", "").replace("`", "")
    return text


def _check_range(name: str, value: float, lo: float, hi: float) -> float:
    if not lo <= value <= hi:
        raise ParseError(f"{name} {value:g} is outside {lo:g}–{hi:g}")
    return value


def _score_after(label: str, text: str) -> float | None:
    """The number after the LAST ``<label> … :`` in text ("4.5", "4.5/5", "4 out of 5", the
    decimal comma "4,5"). A range ("3-4", "3 to 4") is not one score: ParseError, never its first
    number."""
    pat = (rf"{label}\s*[:：=]\s*({NUM})((?:,\d+)*)"
           rf"(\s*(?:[-–~]|to)\s*{NUM})?(?:\s*(?:/|out\s+of)\s*\d+(?:\.\d+)?)?")  # fmt: skip
    found = re.findall(pat, text, re.I)
    if not found:
        return None
    number, commas, span = found[-1]
    if span:
        raise ParseError(f"a range ('{number}{commas}{span}'), not one score")
    if commas:
        if "." in number or commas.count(",") > 1:
            raise ParseError(f"'{number}{commas}' is not one number")
        number = f"{number}.{commas[1:]}"  # the decimal comma
    return float(number)


# === step 1 "unified": UnifiedReward-Think, prompt alignment 1–5, one view per request ===============
UNIFIED_THINK_ALIGNMENT = """\
You are given one rendered view ({view} view) of a 3D object that a text-to-3D model generated \
for the caption below. Judge how well the object matches the caption: the kind of object, its \
parts, their shapes and proportions, and every attribute the caption names. A view that hides \
some parts should not be penalised for them.

Caption: "{prompt}"

Reason step by step inside <think> </think>, then give a score from 1 (does not match) to 5 \
(matches perfectly). End your answer with the line:
Final Score: X"""


def parse_final_score(text: str, lo: float = 1.0, hi: float = 5.0) -> float:
    """The last ``Final Score: X`` outside ``<think>`` (UnifiedReward 1.x / Think format)."""
    cleaned = clean_answer(text)
    value = _score_after(r"final\s+score(?:\s*\(\s*1\s*[-–]\s*5\s*\))?", cleaned)
    if value is None:
        if re.search(r"<think>", text, re.I) and not re.search(r"</think>", text, re.I):
            raise ParseError("the answer ended inside <think> without a 'Final Score: X' (raise max_tokens)")
        raise ParseError("no 'Final Score: X' line")
    return _check_range("Final Score", value, lo, hi)


# === step 2 "unified": UnifiedReward-2.0 pointwise, three 1–5 scores ==================================
UNIFIED2_POINTWISE = """\
You are given a rendered view ({view} view) of a 3D object generated from the text caption below. \
Evaluate the image on three axes, each from 1 to 5 (decimals allowed):
- Alignment Score: how well the object matches the caption in content.
- Coherence Score: how logically consistent and intact the object is (no broken, floating or \
distorted parts).
- Style Score: how aesthetically appealing the object looks, regardless of the caption.

Text Caption: [{prompt}]

Output exactly these three lines and nothing else:
Alignment Score (1-5): X
Coherence Score (1-5): Y
Style Score (1-5): Z"""

UNIFIED2_DIMENSIONS = ("alignment", "coherence", "style")


def parse_unified2(text: str) -> dict[str, float]:
    """``Alignment/Coherence/Style Score (1-5): X`` → {"alignment", "coherence", "style"}.

    Case, spacing, markdown bold, "(1–5)", "X/5" tolerated; the last line of each wins; a
    missing dimension or a value outside 1–5 raises ParseError.
    """
    cleaned = clean_answer(text)
    out: dict[str, float] = {}
    for dim in UNIFIED2_DIMENSIONS:
        value = _score_after(rf"\b{dim}(?:\s+score)?(?:\s*\(\s*1\s*[-–~]\s*5\s*\))?", cleaned)
        if value is None:
            raise ParseError(f"no '{dim.capitalize()} Score (1-5): X' line")
        out[dim] = _check_range(f"{dim.capitalize()} Score", value, 1.0, 5.0)
    return out


# === step 1 "consist": Qwen2.5-VL, category match over all six views ==================================
CATEGORY_MATCH = """\
The {n} images are renders of one 3D object from the {views} sides. A text-to-3D model made it \
for the caption: "{prompt}"

Does the object belong to the category of object the caption asks for (for example, a caption \
asking for a chair must give a chair, not a table or a stool)? Ignore colour, material and small \
details. Think briefly, then end with exactly one line:
Answer: yes
or
Answer: no"""

_YES = {"yes", "y", "true", "1", "match", "matches"}
_NO = {"no", "n", "false", "0", "mismatch"}


def _yes_no(word: str) -> float | None:
    word = word.strip().lower().strip(".,;:!()[]'\"")
    return 1.0 if word in _YES else 0.0 if word in _NO else None


def _leading_yes_no(line: str) -> float | None:
    """A line that *answers* yes or no: the word alone, or followed by punctuation ("No, it is a
    table."). "No doubt about it, this is a chair." starts with "No" but answers nothing."""
    m = re.match(r"\s*([A-Za-z0-9]+)\s*(?:$|[.,;:!)\]]|\s[-–—]\s)", line)
    return _yes_no(m.group(1)) if m else None


def parse_binary(text: str) -> float:
    """yes/no (true/false, 1/0) → 1.0/0.0.

    Prefers the last structured line ("Answer: yes", "Final answer: no", "Match: 1"), then a last
    or first line that answers with yes/no followed by punctuation or nothing ("No, it is a
    table."). A sentence that merely starts with the word ("No doubt about it, …") is no answer.
    """
    cleaned = clean_answer(text)
    found = re.findall(r"\b(?:final\s+answer|answer|match|category\s+match|verdict)\s*[:：=]\s*([A-Za-z0-9]+)", cleaned, re.I)
    for word in reversed(found):
        value = _yes_no(word)
        if value is not None:
            return value
    lines = [ln.strip(" -*#>\t") for ln in cleaned.splitlines() if ln.strip(" -*#>\t")]
    if not lines:
        raise ParseError("empty answer")
    for line in (lines[-1], lines[0]):
        value = _leading_yes_no(line)
        if value is not None:
            return value
    raise ParseError("no yes/no answer (expected a final 'Answer: yes' or 'Answer: no' line)")


# === step 2 "consist": Qwen2.5-VL, colour smoothness / material / texture, each 0–1 ===================
COLOUR_MATERIAL_TEXTURE = """\
The {n} images are renders of one 3D object from the {views} sides, generated for the caption: \
"{prompt}"

Rate the object's surface on three criteria, each a number from 0 (very poor) to 1 (excellent):
- color: are the colours smooth and consistent across the surface and between views, without \
noise, seams or blotches?
- material: does the material look realistic and plausible for this object?
- texture: are the surface textures sensible for this object and consistent between views?

Reply with one JSON object only, for example:
{{"color": 0.8, "material": 0.6, "texture": 0.7}}"""

CMT_KEYS = ("color", "material", "texture")


def _cmt_key(key: str) -> str | None:
    key = key.lower()
    for k, pat in (("color", r"colou?r"), ("material", r"material"), ("texture", r"textur")):
        if re.search(pat, key):
            return k
    return None


def _json_objects(text: str) -> list[dict]:
    """Every top-level ``{…}`` in text that parses as a JSON object, in order."""
    out, depth, start = [], 0, None
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                try:
                    obj = json.loads(text[start : i + 1])
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    out.append(obj)
    return out


def _as_float(value) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and re.fullmatch(rf"\s*{NUM}\s*", value):
        return float(value)
    return None


def parse_cmt(text: str) -> dict[str, float]:
    """{"color", "material", "texture"} in [0, 1] from a JSON object or ``Color: 0.8`` lines
    (British "colour", "Material realism", "Texture score" accepted)."""
    cleaned = clean_answer(text)
    out: dict[str, float] = {}
    for obj in reversed(_json_objects(cleaned)):  # the last complete object wins
        cand = {}
        for k, v in obj.items():
            key, val = _cmt_key(str(k)), _as_float(v)
            if key and val is not None:
                cand[key] = val
        if all(k in cand for k in CMT_KEYS):
            out = cand
            break
    if not out:
        for key, pat in (("color", r"colou?r"), ("material", r"material"), ("texture", r"texture")):
            value = _score_after(rf"\b{pat}[a-z]*(?:\s+[a-z]+)?(?:\s+score)?", cleaned)
            if value is not None:
                out[key] = value
    missing = [k for k in CMT_KEYS if k not in out]
    if missing:
        raise ParseError(f"no value for {', '.join(missing)} (expected JSON like "
                         '{"color": 0.8, "material": 0.6, "texture": 0.7})')  # fmt: skip
    return {k: _check_range(k, out[k], 0.0, 1.0) for k in CMT_KEYS}


# === step 2 "part": one planned component, exists {0,1} + completeness [0,1] ==========================
PART_CHECK = """\
The {n} images are renders of one 3D object from the {views} sides, generated for the caption: \
"{prompt}"

The object should have this component: "{component}".
1. exists: is this component present in the object? 1 if yes, 0 if no.
2. completeness: how complete and well-formed is it, from 0 (absent or broken) to 1 (complete)?

Reply with one JSON object only, for example:
{{"exists": 1, "completeness": 0.8}}"""


def parse_part(text: str) -> dict[str, float]:
    """{"exists": 0|1, "completeness": [0, 1]} from JSON or ``Exists: yes`` / ``Completeness: 0.7``
    lines. A component that does not exist has completeness 0 whatever the judge wrote."""
    cleaned = clean_answer(text)
    exists = completeness = None
    for obj in reversed(_json_objects(cleaned)):
        low = {str(k).lower(): v for k, v in obj.items()}
        e = next((v for k, v in low.items() if "exist" in k or k == "present"), None)
        if e is None:
            continue
        exists = _yes_no(str(e)) if not isinstance(e, (bool, int, float)) else float(e)
        c = next((v for k, v in low.items() if "complete" in k), None)
        completeness = _as_float(c) if c is not None else None
        break
    if exists is None:
        m = re.findall(r"\b(?:exists?|present)\s*[:：=]\s*([A-Za-z0-9.]+)", cleaned, re.I)
        if m:
            exists = _yes_no(m[-1])
        completeness = _score_after(r"\bcompleteness(?:\s+score)?", cleaned)
    if exists is None or exists not in (0.0, 1.0):
        raise ParseError('no exists value 0/1 (expected JSON like {"exists": 1, "completeness": 0.8})')
    if exists == 0.0:
        return {"exists": 0.0, "completeness": 0.0}
    if completeness is None:
        raise ParseError("no completeness value for an existing component")
    return {"exists": 1.0, "completeness": _check_range("completeness", completeness, 0.0, 1.0)}
