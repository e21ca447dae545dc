"""The policy: a Qwen2.5-VL checkpoint that writes a plan and 1024 mesh codes for a prompt.

`Policy.generate` runs one-step generation (the public ShapeLLM-Omni / AR3D-R1 way) or the
two-step Hi-GRPO rollout (step 1: plan → coarse codes; step 2: prompt + plan → visual plan →
refined codes). Its result keeps what a trainer needs (prompt and completion ids, masks of the
reasoning and mesh positions) next to what a user needs (plans, codes, timings).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import prompts as templates
from .constraint import DONE, MESH, PLAN, ConstraintState, MeshConstraint
from .errors import Ar3dError
from .engine import GenerationEngine, SamplingConfig
from .graph_engine import make_engine
from .hub import resolve_policy
from .prequantized import load_quantized_model, model_class, read_metadata, run_precision
from .quantize import PrecisionError, check_precision, quantize_model, requested_precision, resolve_precision
from .tokens import MeshVocab

MAX_PROMPT_TOKENS = 1024
log = logging.getLogger(__name__)


class PolicyLoadError(Ar3dError, RuntimeError):
    """A checkpoint folder exists but cannot be loaded as a policy."""


@dataclass
class Progress:
    """Where generation stands; feeds progress bars and the server's job status."""

    step: int  # 1 or 2
    steps: int  # 1 (one-step) or 2 (Hi-GRPO)
    stage: str  # "planning", then "mesh" (one-step) or "coarse" / "refined"
    mesh_tokens: int  # codes written so far by the slowest row
    total: int = 1024
    # Per row (prompts × samples), the plans of the steps already finished: the step-1 plan is
    # known while step 2 runs, so the server and the add-on can show it early.
    plans: tuple = ()


@dataclass
class StepOutput:
    step: int  # 1: plan → coarse codes; 2: visual plan → refined codes
    plan: str
    codes: np.ndarray  # int64 [1024]
    prompt_ids: list[int]
    completion_ids: list[int]  # plan, <mesh-start>, 1024 codes, <mesh-end>
    reasoning_mask: list[bool]  # plan tokens the policy chose (enter the loss)
    mesh_mask: list[bool]  # mesh codes the policy chose (enter the loss)
    seconds: float
    # log π of each completion token as the engine drew it (None: the engine does not say);
    # the trainer's importance weights for rollouts from 8-bit weights read them
    sample_logprobs: list[float] | None = None


@dataclass
class Sample:
    prompt: str
    group_index: int  # which of the N samples of this prompt
    steps: list[StepOutput]

    @property
    def codes(self) -> np.ndarray:
        """The final mesh's codes: refined in two-step mode, else the only ones."""
        return self.steps[-1].codes

    @property
    def plans(self) -> list[str]:
        return [s.plan for s in self.steps]


@dataclass
class GenerationResult:
    samples: list[Sample]  # grouped by prompt: all samples of prompts[0] first
    seed: int
    two_step: bool
    sampling: SamplingConfig
    model: str
    engine: str
    seconds: float
    timings: dict = field(default_factory=dict)
    # what went wrong but was recovered, e.g. {"step1_nonfinite_logits": [per-row decode steps whose
    # logits held NaN/inf]}; empty when nothing did
    diagnostics: dict = field(default_factory=dict)

    def group(self, prompt_index: int, samples_per_prompt: int) -> list[Sample]:
        return self.samples[prompt_index * samples_per_prompt : (prompt_index + 1) * samples_per_prompt]


def default_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def default_dtype(device: str) -> torch.dtype:
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


class Policy:
    def __init__(self, model, tokenizer, name: str = "", engine: GenerationEngine | str | None = None,
                 path: Path | None = None):  # fmt: skip
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.path = path  # the checkpoint folder, where a bundled VQ-VAE may live
        self.vocab = MeshVocab.from_tokenizer(tokenizer)
        pad = self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        # "auto": the graph engine (static cache, CUDA graphs) when the model is a Qwen2 /
        # Qwen2.5-VL stack, else transformers' generate; a string picks one ($AR3D_ENGINE too).
        self.engine = make_engine(model, pad, engine) if engine is None or isinstance(engine, str) else engine
        eos = tokenizer.eos_token_id
        self.stop_ids = sorted({i for i in (eos, pad, *_as_list(model.generation_config.eos_token_id)) if i is not None})
        self.vocab_size = model.get_output_embeddings().weight.shape[0]
        self.precision = getattr(model.config, "ar3d_precision", "default")  # 8-bit weights: core/quantize.py

    @classmethod
    def load(cls, spec=None, device: str | None = None, dtype: torch.dtype | str | None = None,
             engine: str | None = None, precision: str | None = None) -> "Policy":  # fmt: skip
        """Load from a local folder or Hugging Face id (see `ar3d.core.hub` for the search order).

        `precision` "fp8" / "int8" (default: ``$AR3D_PRECISION``) stores the decoder's linear
        layers in 8 bits once, here (`ar3d.core.quantize`); checked before the weights load. A
        folder written by `ar3d quantize` loads its 8-bit weights as stored and runs in their
        precision (`ar3d.core.prequantized`); asking it for another one is an error."""
        from .versions import require

        require("transformers")  # a 4.x would fail below with a message that blames the files
        from transformers import AutoTokenizer

        device = device or default_device()
        asked = requested_precision(precision)
        precision = resolve_precision(precision)
        check_precision(precision, device)
        path = resolve_policy(spec)
        prequantized = read_metadata(path)  # written by `ar3d quantize`: 8-bit weights as stored
        if prequantized is not None:
            run_precision(asked, prequantized, path, device)  # its own precision, or a clear error
        dtype = getattr(torch, dtype) if isinstance(dtype, str) else (dtype or default_dtype(device))
        try:
            model_type = json.loads((path / "config.json").read_text()).get("model_type")
            tokenizer = AutoTokenizer.from_pretrained(path)
            if prequantized is not None:
                model = load_quantized_model(path, device=device, dtype=dtype)
            else:
                model = model_class(model_type).from_pretrained(path, dtype=dtype).to(device).eval()
        except PrecisionError:  # a pre-quantized folder that does not match: its own message
            raise
        except Exception as e:
            raise PolicyLoadError(
                f"could not load the policy in '{path}': {type(e).__name__}: {e}\n"
                "The folder must hold a complete Qwen2.5-VL checkpoint (config.json, tokenizer files, "
                "*.safetensors). Re-download it, or check that the copy is not truncated."
            ) from e
        if tokenizer.chat_template is None:
            raise PolicyLoadError(f"the tokenizer in '{path}' has no chat template; it is not a chat checkpoint")
        if prequantized is None:
            quantize_model(model, precision)
        return cls(model, tokenizer, name=str(spec or path), path=path, engine=engine)

    # --- generation -----------------------------------------------------------------------
    def constraint(self, sampling: SamplingConfig) -> MeshConstraint:
        return MeshConstraint(self.vocab, self.vocab_size, self.stop_ids, sampling.max_plan_tokens,
                              tokenizer_size=len(self.tokenizer))  # fmt: skip

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if hasattr(ids, "keys"):  # some tokenizers return a BatchEncoding
            ids = ids["input_ids"]
        if len(ids) > MAX_PROMPT_TOKENS:
            raise templates.PromptError(
                f"the prompt is {len(ids)} tokens after templating; the limit is {MAX_PROMPT_TOKENS}. Shorten it."
            )
        return list(ids)

    def generate(
        self,
        prompts: str | list[str],
        samples: int = 1,
        two_step: bool = False,
        sampling: SamplingConfig | None = None,
        seed: int | None = None,
        progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> GenerationResult:
        """N samples for each prompt. Same seed, prompts and settings → same result on one machine."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise templates.PromptError("no prompts given")
        prompts = [templates.check_prompt(p) for p in prompts]
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        sampling = sampling or SamplingConfig()
        seed = secrets.randbelow(2**31) if seed is None else int(seed)
        rows = [p for p in prompts for _ in range(samples)]
        steps = 2 if two_step else 1
        constraint = self.constraint(sampling)
        t0 = time.perf_counter()

        outputs: list[list[StepOutput]] = [[] for _ in rows]
        diagnostics: dict = {}
        plans: list[str | None] = [None] * len(rows)
        for step in range(1, steps + 1):
            prompt_ids = [self.prompt_ids(templates.step_messages(step, p, plans[i], two_step)) for i, p in enumerate(rows)]
            stage = "mesh" if steps == 1 else ("coarse" if step == 1 else "refined")
            done_plans = tuple(tuple(o.plan for o in row) for row in outputs)
            callback = _progress_callback(step, steps, stage, progress, should_stop, done_plans)
            out = self.engine.generate(prompt_ids, constraint, sampling, seed=seed + step - 1, on_token=callback)
            if out.nonfinite is not None and any(out.nonfinite):
                diagnostics[f"step{step}_nonfinite_logits"] = list(out.nonfinite)
                log.warning("step %d: logits with NaN/inf at %d decode steps (rows %s); they were sanitized, "
                            "but the model overflows: on a GPU without bf16, try --dtype float32", step,
                            sum(out.nonfinite), [i for i, n in enumerate(out.nonfinite) if n])  # fmt: skip
            for i, completion in enumerate(out.completions):
                result = self._parse(step, prompt_ids[i], completion, constraint, out.seconds)
                result.sample_logprobs = out.logprobs[i] if out.logprobs is not None else None
                outputs[i].append(result)
                plans[i] = result.plan
        samples_out = [Sample(rows[i], i % samples, outputs[i]) for i in range(len(rows))]
        seconds = time.perf_counter() - t0
        timings = {f"step{s.step}_seconds": s.seconds for s in samples_out[0].steps}
        return GenerationResult(samples_out, seed, two_step, sampling, self.name, self.engine.name, seconds, timings,
                                diagnostics)  # fmt: skip

    def _parse(self, step, prompt_ids, completion, constraint: MeshConstraint, seconds) -> StepOutput:
        codes, _ = self.vocab.codes_from_ids(completion)  # strict: the constraint guarantees the shape
        start = completion.index(self.vocab.start_id)
        plan = self.tokenizer.decode(completion[:start], skip_special_tokens=True).strip()
        comp = torch.tensor([completion])
        initial = constraint.initial_state(torch.tensor([prompt_ids]))
        reasoning, mesh = constraint.loss_masks(comp, initial)
        return StepOutput(step, plan, codes, prompt_ids, completion, reasoning[0].tolist(), mesh[0].tolist(), seconds)


def _as_list(x):
    return [] if x is None else (list(x) if isinstance(x, (list, tuple)) else [x])


def _progress_callback(step, steps, stage, progress, should_stop, plans=()):
    if progress is None and should_stop is None:
        return None
    last = [None]

    def on_token(state: ConstraintState) -> bool:
        if progress is not None:
            done = torch.where(state.phase == DONE, 1024, torch.where(state.phase == MESH, state.n, 0))
            planning = bool((state.phase == PLAN).any())
            event = Progress(step, steps, "planning" if planning else stage, int(done.min()), plans=plans)
            if event != last[0]:
                last[0] = event
                progress(event)
        return bool(should_stop and should_stop())

    return on_token
