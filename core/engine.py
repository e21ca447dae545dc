"""Generation engines: token-id prompts in, constrained completions out.

The policy talks to an engine through `GenerationEngine.generate` only, so a faster engine
(static KV cache and CUDA graphs, or a vLLM server with weight sync for the trainer) can replace
`HFEngine` without changing any caller. `HFEngine` is the reference path: transformers'
`generate` with ar3d's `MeshConstraint` as a logits processor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from .constraint import ConstraintState, MeshConstraint
from .sampling import SamplingConfig  # noqa: F401  (re-exported: engines take it)


# Called after every generated token with the constraint state of each row; returning True stops
# generation (cancellation). Engines may call it less often, never more than once a token.
TokenCallback = Callable[[ConstraintState], bool]


class GenerationCancelled(RuntimeError):
    """Generation was stopped by the caller between two tokens."""


@dataclass
class EngineOutput:
    completions: list[list[int]]  # generated ids per row, up to and including <mesh-end>
    seconds: float
    # per row, the decode steps whose logits held NaN or ±inf (sanitized before sampling); None:
    # the engine does not count them
    nonfinite: list[int] | None = None
    # per row, log π(token) of each completion token under the distribution it was drawn from
    # (after the constraint, temperature, top-k and top-p; 0 for forced tokens); None: the
    # engine does not report them. The trainer's 8-bit rollouts weigh the loss with them.
    logprobs: list[list[float]] | None = None


def until_mesh_end(rows: list[list[int]], end_id: int) -> list[list[int]]:
    """Each generated row cut after its `<mesh-end>` (what follows is padding or forced tokens)."""
    return [row[: row.index(end_id) + 1] if end_id in row else row for row in rows]


class GenerationEngine(Protocol):
    """Writes constrained completions for prompt token ids.

    An engine that holds its own copy of the weights (a vLLM server, a compiled graph) may also
    define ``sync_weights(model)``: the trainer calls it after every optimizer update so rollouts
    come from the current policy. In-process engines that share the model need not."""

    name: str

    def generate(
        self,
        prompts: list[list[int]],
        constraint: MeshConstraint,
        sampling: SamplingConfig,
        seed: int | None = None,
        on_token: TokenCallback | None = None,
    ) -> EngineOutput: ...


class HFEngine:
    """transformers' `generate` with the mesh constraint applied as a logits processor."""

    name = "transformers"

    def __init__(self, model, pad_id: int):
        self.model = model
        self.pad_id = pad_id
        # Sharded training (FSDP, ZeRO-3): every process must run the same number of forward
        # passes, since each gathers weight shards with collectives (transformers' synced_gpus).
        self.synced_gpus = False

    def generate(self, prompts, constraint, sampling, seed=None, on_token=None) -> EngineOutput:
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        device = self.model.device
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompts):  # left padding: every row's next token is at the same column
            ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
        ids, mask = ids.to(device), mask.to(device)

        tracker = _ConstraintProcessor(constraint)
        stopper = _TokenCallback(tracker, on_token)
        config = GenerationConfig(
            do_sample=not sampling.greedy,
            temperature=sampling.temperature if not sampling.greedy else None,
            top_p=sampling.top_p if not sampling.greedy else None,
            top_k=sampling.top_k if not sampling.greedy else None,
            repetition_penalty=1.0,  # a checkpoint's own default would distort the mesh codes
            max_new_tokens=sampling.max_plan_tokens + constraint.vocab.tokens_per_mesh + 2,
            eos_token_id=[constraint.vocab.end_id],
            pad_token_id=self.pad_id,
        )
        if seed is not None:
            torch.manual_seed(seed)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                generation_config=config,
                logits_processor=LogitsProcessorList([tracker]),
                stopping_criteria=StoppingCriteriaList([stopper]),
                synced_gpus=self.synced_gpus,
            )
        seconds = time.perf_counter() - t0
        if stopper.cancelled:
            raise GenerationCancelled("generation cancelled")
        nonfinite = tracker.nonfinite.tolist() if tracker.nonfinite is not None else [0] * len(prompts)
        return EngineOutput(until_mesh_end(out[:, width:].tolist(), constraint.vocab.end_id), seconds, nonfinite)


class _ConstraintProcessor:
    """LogitsProcessor that carries each row's constraint state from token to token."""

    def __init__(self, constraint: MeshConstraint):
        self.constraint = constraint
        self.state: ConstraintState | None = None
        self.nonfinite: torch.Tensor | None = None  # per row, steps with NaN/inf logits (on the device)
        self._length = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.state is None:
            self.state = self.constraint.initial_state(input_ids)
        else:
            if input_ids.shape[1] != self._length + 1:
                raise RuntimeError("the constraint saw a step skipped; it needs every generated token")
            self.state = self.constraint.advance(self.state, input_ids[:, -1])
        self._length = input_ids.shape[1]
        # NaN/inf would make transformers' multinomial raise (a device-side assert on CUDA)
        masked, bad = self.constraint.sanitize(scores, self.state)
        self.nonfinite = bad.long() if self.nonfinite is None else self.nonfinite + bad.long()
        if masked.shape[-1] < scores.shape[-1]:  # padded embedding rows beyond the tokenizer
            pad = masked.new_full((scores.shape[0], scores.shape[-1] - masked.shape[-1]), float("-inf"))
            masked = torch.cat([masked, pad], dim=-1)
        return masked.to(scores.dtype)


class _TokenCallback:
    """StoppingCriteria that reports progress and lets the caller cancel between tokens."""

    def __init__(self, tracker: _ConstraintProcessor, on_token: TokenCallback | None):
        self.tracker, self.on_token, self.cancelled = tracker, on_token, False

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        stop = False
        if self.on_token is not None and self.tracker.state is not None:
            state = self.tracker.constraint.advance(self.tracker.state, input_ids[:, -1])
            stop = bool(self.on_token(state))
        self.cancelled |= stop
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)
