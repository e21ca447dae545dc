"""The VLM-judge rewards of Hi-GRPO (AR3D-R1), over a ``JudgeClient``.

=========================  ====  ==========================  ==========  ===========  =====
reward (registry name)     step  judge (served model)        requests    sub_scores   range
=========================  ====  ==========================  ==========  ===========  =====
UnifiedAlignment           1     UnifiedReward-Think-qwen-7b one a view  1            1–5
  ("unified_alignment")
UnifiedReward2 ("unified") 2     UnifiedReward-2.0-qwen-7b   one a view  3            3–15
CategoryConsistency        1     Qwen2.5-VL-7B-Instruct      one (6 img) 1            0–1
  ("category")
ColourMaterialTexture      2     Qwen2.5-VL-7B-Instruct      one (6 img) 3            0–3
  ("cmt")
PartCompleteness ("part")  2     Qwen2.5-VL-7B-Instruct      one a part  2            0–2
=========================  ====  ==========================  ==========  ===========  =====

Choices and deviations from the paper:

* **UnifiedReward2 scores one view per request and takes, per dimension, the max over views**
  (``reduce="mean"`` is available). UnifiedReward-2.0 is trained on single images; six images
  in one request are outside what it learnt, and the max over views is the paper's convention
  for HPS and the step-1 unified score. It costs six short requests instead of one long one;
  the judge encodes the same image tokens either way.
* **PartCompleteness asks a VLM over the six views** whether each planned component exists and
  how complete it is. The paper used ShapeLLM, a point-cloud LLM, which vLLM does not serve;
  ``PartJudge`` is the seam where a point-cloud judge plugs in (each query carries the mesh).
* The consistency and part judges see the user's prompt, never the policy's plan text (other
  than the component names): a judge that reads the policy's own description can be talked into
  a high score.

A score is *missing* (never 0) when the sample has no render, a request failed (the reason
quotes the HTTP error) or an answer does not parse ("unparseable judge answer: …"). Per-view
rewards need every view scored unless ``min_views`` says fewer will do. ``details`` holds the
raw answer text (``raw``: a string, or view name → string for per-view rewards), the parsed
sub-scores, per-view scores and the HTTP attempts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from . import judge_prompts as P
from .base import RewardBatch, SampleScore
from .judge_client import ChatRequest, ChatResult, JudgeClient
from .vllm_serve import default_base_url

UNIFIED2_MODEL = "UnifiedReward-2.0-qwen-7b"
UNIFIED_THINK_MODEL = "UnifiedReward-Think-qwen-7b"
QWEN_VL_MODEL = "Qwen2.5-VL-7B-Instruct"
NO_RENDER = "no render (the sample could not be rendered)"


def _view_name(names: Sequence[str], v: int) -> str:
    return names[v] if v < len(names) else f"view{v}"


def _views_phrase(names: Sequence[str]) -> str:
    names = list(names)
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)


def _answer_failure(result: ChatResult, parse: Callable[[str], Any], max_tokens: int):
    """(parsed, None) or (None, reason) for one answer."""
    if not result.ok:
        return None, f"judge request failed: {result.error}"
    try:
        return parse(result.text), None
    except P.ParseError as e:
        cut = f" (answer cut at max_tokens={max_tokens})" if result.finish_reason == "length" else ""
        return None, f"unparseable judge answer: {e}{cut}: {P.clean_answer(result.text)[-160:].strip()!r}"


class _JudgeReward:
    """What every judge reward shares: the client, the served model name, generation limits."""

    name: str
    sub_scores: int
    value_range: tuple[float, float]
    default_model: str
    default_max_tokens: int = 256

    def __init__(self, client: JudgeClient, model: str | None = None, max_tokens: int | None = None,
                 temperature: float = 0.0, name: str | None = None) -> None:  # fmt: skip
        self.client = client
        self.model = model or self.default_model
        self.max_tokens = int(max_tokens or self.default_max_tokens)
        self.temperature = float(temperature)
        if name:
            self.name = name

    def _request(self, images: Sequence[np.ndarray], text: str) -> ChatRequest:
        return ChatRequest(self.model, text, list(images), self.max_tokens, self.temperature)


class _PerViewReward(_JudgeReward):
    """One request per view; each dimension reduced over views (max by default)."""

    def __init__(self, client: JudgeClient, model: str | None = None, max_tokens: int | None = None,
                 temperature: float = 0.0, name: str | None = None, reduce: str = "max",
                 min_views: int | None = None) -> None:  # fmt: skip
        super().__init__(client, model, max_tokens, temperature, name)
        if reduce not in ("max", "mean"):
            raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}")
        self.reduce, self.min_views = reduce, min_views

    def _text(self, prompt: str, view: str) -> str:
        raise NotImplementedError

    def _parse(self, text: str) -> dict[str, float]:
        raise NotImplementedError

    def score(self, batch: RewardBatch) -> list[SampleScore]:
        out: list[SampleScore | None] = [None] * len(batch)
        requests, owners = [], []
        for i in range(len(batch)):
            views = batch.rgb_views(i)
            if views is None or len(views) == 0:
                out[i] = SampleScore.fail(NO_RENDER)
                continue
            for v in range(len(views)):
                requests.append(self._request([views[v]], self._text(batch.prompts[i], _view_name(batch.view_names, v))))
                owners.append((i, v))
        per_sample: dict[int, list[tuple[int, ChatResult]]] = {}
        for (i, v), result in zip(owners, self.client.chat_many(requests)):
            per_sample.setdefault(i, []).append((v, result))
        for i, items in per_sample.items():
            out[i] = self._combine(batch.view_names, items)
        return out  # type: ignore[return-value]

    def _combine(self, names: Sequence[str], items: list[tuple[int, ChatResult]]) -> SampleScore:
        raw, per_view, failures = {}, {}, []
        for v, result in items:
            vn = _view_name(names, v)
            raw[vn] = result.text
            parsed, reason = _answer_failure(result, self._parse, self.max_tokens)
            if reason:
                failures.append(f"{reason} (view {vn})")
            else:
                per_view[vn] = parsed
        details: dict[str, Any] = {"model": self.model, "raw": raw, "views": per_view,
                                   "attempts": sum(r.attempts for _, r in items)}  # fmt: skip
        if failures:
            details["failures"] = failures
        need = len(items) if self.min_views is None else min(self.min_views, len(items))
        if len(per_view) < max(need, 1):
            return SampleScore(None, details, missing=failures[0])
        reduce = max if self.reduce == "max" else (lambda xs: sum(xs) / len(xs))
        dims = list(next(iter(per_view.values())))
        sub = {d: float(reduce([s[d] for s in per_view.values()])) for d in dims}
        details["sub_scores"] = sub
        return SampleScore(sum(sub.values()), details)


class UnifiedAlignment(_PerViewReward):
    """Step 1 "unified": UnifiedReward-Think's prompt alignment (1–5), max over the views."""

    name = "unified_alignment"
    sub_scores = 1
    value_range = (1.0, 5.0)
    default_model = UNIFIED_THINK_MODEL
    default_base_url = default_base_url(UNIFIED_THINK_MODEL)
    default_max_tokens = 1024  # room for the <think> block before "Final Score"

    def _text(self, prompt: str, view: str) -> str:
        return P.UNIFIED_THINK_ALIGNMENT.format(prompt=prompt, view=view)

    def _parse(self, text: str) -> dict[str, float]:
        return {"alignment": P.parse_final_score(text)}


class UnifiedReward2(_PerViewReward):
    """Step 2 "unified": UnifiedReward-2.0's Alignment + Coherence + Style (each 1–5), each the max
    over views (see the module docstring for why per view)."""

    name = "unified"
    sub_scores = 3
    value_range = (3.0, 15.0)
    default_model = UNIFIED2_MODEL
    default_base_url = default_base_url(UNIFIED2_MODEL)
    default_max_tokens = 128

    def _text(self, prompt: str, view: str) -> str:
        return P.UNIFIED2_POINTWISE.format(prompt=prompt, view=view)

    def _parse(self, text: str) -> dict[str, float]:
        return P.parse_unified2(text)


class _AllViewsReward(_JudgeReward):
    """One request per sample carrying all its views."""

    template: str
    parser: Callable[[str], dict[str, float]]

    def score(self, batch: RewardBatch) -> list[SampleScore]:
        out: list[SampleScore | None] = [None] * len(batch)
        requests, owners = [], []
        for i in range(len(batch)):
            views = batch.rgb_views(i)
            if views is None or len(views) == 0:
                out[i] = SampleScore.fail(NO_RENDER)
                continue
            names = [_view_name(batch.view_names, v) for v in range(len(views))]
            text = self.template.format(prompt=batch.prompts[i], n=len(views), views=_views_phrase(names))
            requests.append(self._request(list(views), text))
            owners.append(i)
        for i, result in zip(owners, self.client.chat_many(requests)):
            parsed, reason = _answer_failure(result, type(self).parser, self.max_tokens)
            details = {"model": self.model, "raw": result.text, "attempts": result.attempts}
            if reason:
                out[i] = SampleScore(None, details, missing=reason)
            else:
                out[i] = SampleScore(sum(parsed.values()), dict(details, sub_scores=parsed))
        return out  # type: ignore[return-value]


def _category(text: str) -> dict[str, float]:
    return {"category_match": P.parse_binary(text)}


class CategoryConsistency(_AllViewsReward):
    """Step 1 "consist": does the object (all six views at once) belong to the prompt's category?"""

    name = "category"
    sub_scores = 1
    value_range = (0.0, 1.0)
    default_model = QWEN_VL_MODEL
    default_base_url = default_base_url(QWEN_VL_MODEL)
    default_max_tokens = 256
    template = P.CATEGORY_MATCH
    parser = staticmethod(_category)


class ColourMaterialTexture(_AllViewsReward):
    """Step 2 "consist": colour smoothness + material realism + texture rationality, each 0–1."""

    name = "cmt"
    sub_scores = 3
    value_range = (0.0, 3.0)
    default_model = QWEN_VL_MODEL
    default_base_url = default_base_url(QWEN_VL_MODEL)
    default_max_tokens = 128
    template = P.COLOUR_MATERIAL_TEXTURE
    parser = staticmethod(P.parse_cmt)


# --- part completeness --------------------------------------------------------------------------------
@dataclass
class PartQuery:
    """One planned component of one sample, with everything a part judge might look at."""

    prompt: str
    component: str
    views: np.ndarray | None  # uint8 [V, H, W, 3], or None when not rendered
    view_names: Sequence[str]
    mesh: Any = None  # for a point-cloud judge (the paper's ShapeLLM)


@dataclass
class PartVerdict:
    """exists ∈ {0, 1} and completeness ∈ [0, 1], or ``error`` saying why there are none."""

    exists: float | None = None
    completeness: float | None = None
    error: str | None = None
    raw: str | None = None


@runtime_checkable
class PartJudge(Protocol):
    """Judges a batch of (sample, component) queries at once, so it can run them concurrently."""

    def judge(self, queries: Sequence[PartQuery]) -> list[PartVerdict]: ...


class VLMPartJudge:
    """The default part judge: Qwen2.5-VL over the six views, one request per component."""

    def __init__(self, client: JudgeClient, model: str = QWEN_VL_MODEL, max_tokens: int = 128,
                 temperature: float = 0.0) -> None:  # fmt: skip
        self.client, self.model, self.max_tokens, self.temperature = client, model, max_tokens, temperature

    def judge(self, queries: Sequence[PartQuery]) -> list[PartVerdict]:
        verdicts: list[PartVerdict | None] = [None] * len(queries)
        requests, owners = [], []
        for k, q in enumerate(queries):
            if q.views is None:
                verdicts[k] = PartVerdict(error=NO_RENDER)
                continue
            names = [_view_name(q.view_names, v) for v in range(len(q.views))]
            text = P.PART_CHECK.format(prompt=q.prompt, component=q.component, n=len(q.views),
                                       views=_views_phrase(names))  # fmt: skip
            # views[v] of the same array share memory, so the client encodes them once per sample
            requests.append(ChatRequest(self.model, text, list(q.views), self.max_tokens, self.temperature))
            owners.append(k)
        for k, result in zip(owners, self.client.chat_many(requests)):
            parsed, reason = _answer_failure(result, P.parse_part, self.max_tokens)
            verdicts[k] = PartVerdict(error=reason, raw=result.text) if reason else PartVerdict(raw=result.text, **parsed)
        return verdicts  # type: ignore[return-value]


class PartCompleteness:
    """Step 2 "part": mean over the step-1 plan's components of (exists + completeness), 0–2.

    Components come from ``extract`` over ``batch.step1_plan(i)`` (at most ``max_components``),
    or from ``score(batch, components=[[...], ...])`` when the caller knows them.
    """

    name = "part"
    sub_scores = 2
    value_range = (0.0, 2.0)
    default_model = QWEN_VL_MODEL
    default_base_url = default_base_url(QWEN_VL_MODEL)

    def __init__(self, client: JudgeClient | None = None, model: str | None = None, max_tokens: int = 128,
                 temperature: float = 0.0, name: str | None = None, judge: PartJudge | None = None,
                 extract: Callable[[str], list[str]] | None = None, max_components: int = 8) -> None:  # fmt: skip
        if judge is None:
            if client is None:
                raise ValueError("PartCompleteness needs a JudgeClient (client=) or a PartJudge (judge=)")
            judge = VLMPartJudge(client, model or self.default_model, max_tokens, temperature)
        self.judge = judge
        self.model = model or self.default_model
        self.extract = extract or extract_components
        self.max_components = max_components
        if name:
            self.name = name

    def score(self, batch: RewardBatch, components: Sequence[Sequence[str] | None] | None = None) -> list[SampleScore]:
        if components is not None and len(components) != len(batch):
            raise ValueError(f"components has {len(components)} entries for {len(batch)} samples")
        out: list[SampleScore | None] = [None] * len(batch)
        queries, owners, wanted = [], [], {}
        for i in range(len(batch)):
            plan = batch.step1_plan(i)
            comps = list(components[i]) if components is not None and components[i] is not None else self.extract(plan)
            if not comps:
                out[i] = SampleScore.fail(
                    "no components found in the step-1 plan (plan it as '… has a seat, a backrest and four "
                    "legs' or a bullet list, or pass components= to PartCompleteness.score)", plan=plan)  # fmt: skip
                continue
            views = batch.rgb_views(i)
            mesh = batch.meshes[i] if batch.meshes is not None else None
            wanted[i] = comps[: self.max_components]
            for c in wanted[i]:
                queries.append(PartQuery(batch.prompts[i], c, views, batch.view_names, mesh))
                owners.append(i)
        per_sample: dict[int, list[PartVerdict]] = {}
        for i, verdict in zip(owners, self.judge.judge(queries) if queries else []):
            per_sample.setdefault(i, []).append(verdict)
        for i, verdicts in per_sample.items():
            out[i] = self._combine(wanted[i], verdicts)
        return out  # type: ignore[return-value]

    def _combine(self, comps: list[str], verdicts: list[PartVerdict]) -> SampleScore:
        parts = {c: {"exists": v.exists, "completeness": v.completeness} for c, v in zip(comps, verdicts)}
        details = {"model": self.model, "components": comps, "parts": parts, "raw": {c: v.raw for c, v in zip(comps, verdicts)}}
        for c, v in zip(comps, verdicts):
            if v.error:
                reason = v.error if v.error == NO_RENDER else f"{v.error} (component '{c}')"
                return SampleScore(None, details, missing=reason)
        exists = sum(v.exists for v in verdicts) / len(verdicts)
        complete = sum(v.completeness for v in verdicts) / len(verdicts)
        details["sub_scores"] = {"exists": exists, "completeness": complete}
        return SampleScore(exists + complete, details)


# --- components from a free-text plan --------------------------------------------------------------------
_LIST_VERB = re.compile(
    r"\b(?:has|have|having|with|consists?\s+of|consisting\s+of|composed\s+of|made\s+up\s+of|includes?|including"
    r"|comprises?|comprising|features?|featuring|contains?|containing)\b",
    re.I,
)
_LIST_HEADER = re.compile(r"^\s*(?:the\s+|its\s+)?(?:main\s+|key\s+)?(?:components?|parts?|elements?)\s*(?:are|include|:)\s*:?\s*(.*)$", re.I)
_BULLET = re.compile(r"^\s*(?:[-*•·]|\d+[.)])\s+(.+)$")
_STOP = re.compile(r"\b(?:on|at|in|for|that|which|who|attached|connected|to|from|under|above|below|beneath|near"
                   r"|around|along|supporting|holding|made|where|while|so|as|of\s+(?:wood|metal|plastic))\b.*", re.I)  # fmt: skip
_DETERMINERS = {
    "a", "an", "the", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve",
    "several", "some", "multiple", "many", "few", "its", "their", "his", "her", "each", "both", "pair", "of",
    "set", "various", "single", "numerous", "couple", "also", "then", "finally", "it",
}  # fmt: skip
# Whole-object attributes, not components.
_NOT_PARTS = {
    "shape", "form", "color", "colour", "colors", "colours", "style", "design", "look", "appearance", "texture",
    "material", "materials", "finish", "surface", "size", "proportions", "curves", "lines", "details", "detail",
    "feel", "theme", "silhouette", "structure", "overall", "object", "tone", "tones", "pattern", "patterns",
}  # fmt: skip
_ADJECTIVES = {"tall", "short", "thin", "thick", "wide", "narrow", "small", "large", "big", "round", "square",
               "long", "flat", "smooth", "simple", "modern", "wooden", "metal", "sturdy", "slim", "curved"}  # fmt: skip


def _clean_phrase(phrase: str) -> str | None:
    phrase = re.sub(r"\(.*?\)", " ", phrase)
    phrase = _STOP.sub("", phrase)
    words = re.findall(r"[a-z][a-z'-]*", phrase.lower())
    while words and (words[0] in _DETERMINERS or words[0].isdigit()):
        words.pop(0)
    if not words or len(words) > 4 or words[-1] in _NOT_PARTS or words[-1] in _DETERMINERS:
        return None
    if len(words) == 1 and words[0] in _ADJECTIVES:
        return None
    return " ".join(words)


def _split_list(text: str) -> list[str]:
    return re.split(r",|;|\band\b|\bplus\b|&|\bas well as\b", text, flags=re.I)


def extract_components(plan: str) -> list[str]:
    """Component names from a free-text plan, in order, without duplicates.

    Reads bullet or numbered lines ("- Seat: a flat cushion" → "seat"), "Components: a, b, c"
    lines, and the lists after "has / with / consists of / includes …" ("The chair has a seat,
    a backrest, and four legs." → seat, backrest, legs). Articles and counts are dropped,
    clauses after "on / for / that …" cut, attributes of the whole object (shape, colour …)
    skipped. Heuristic by design: pass explicit components where the plan format is known.
    """
    found: list[str] = []
    rest: list[str] = []
    for line in plan.splitlines():
        bullet, header = _BULLET.match(line), _LIST_HEADER.match(line)
        if bullet:
            item = bullet.group(1)
            head = re.split(r"\s*(?::|\s[-–—]\s)", item, maxsplit=1)
            if len(head) == 2:  # "- Seat: a flat cushion"
                found.append(head[0])
            elif _LIST_VERB.search(item):  # "- The chair has a seat and a backrest"
                rest.append(item)
            else:  # "- four legs"
                found += _split_list(item)
        elif header and header.group(1).strip():
            found += _split_list(header.group(1))
        else:
            rest.append(line)
    for sentence in re.split(r"[.!?\n]+", "\n".join(rest)):
        pieces = _LIST_VERB.split(sentence)
        for piece in pieces[1:]:  # the text after each list verb, up to the next one
            found += _split_list(piece)
    out, seen = [], set()
    for phrase in found:
        name = _clean_phrase(phrase)
        key = name and re.sub(r"(?:es|s)$", "", name)
        if name and key not in seen:
            seen.add(key)
            out.append(name)
    return out
