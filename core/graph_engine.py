"""The fast generation engine: static KV cache, the whole decode step on the device, CUDA graphs.

transformers' `generate` spends most of a 7B mesh on the host: per-token Python, a growing
cache and a host synchronisation per token (BENCHMARKS.md, "Generation"). Here one decode step
(embedding → decoder layers → `lm_head` → `MeshConstraint` → temperature / top-k / top-p →
sampling → constraint state update) reads and writes only fixed buffers, so it is captured once
as a CUDA graph and replayed token after token; the host looks at the state every
`check_every` tokens (progress, cancellation, "all rows done"), never in between. Once no row is
planning, a second captured step runs: `lm_head`'s mesh-code rows only (`core.code_head`).

What it shares with the model: the modules themselves. The step calls the checkpoint's own
`q_proj`, `mlp`, norms and `lm_head` (LoRA-wrapped ones included) and keeps no copy of any
weight, so an optimizer step is seen by the next rollout without a weight sync. What it writes
itself: rotary embedding, the cache and attention over it (a masked product over the static
cache), which transformers cannot capture with a per-row position and the constraint state on
the device. Greedy tokens equal transformers' `generate` on the same model (tests/test_graph_engine.py).

The prompts of a batch are prefilled once per distinct prompt (the N samples of a group share
it) and copied into their rows; each row keeps its own position, so rows of different prompt
lengths need no padding. Supported: Qwen2 / Qwen2.5-VL text stacks with full attention (every
ShapeLLM-Omni / AR3D-R1 checkpoint); anything else gets `HFEngine` from `make_engine`.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .code_head import CodeHead
from .constraint import DONE, PLAN, ConstraintState, MeshConstraint
from .device_sampling import sample_tokens as _sample
from .engine import EngineOutput, GenerationCancelled, HFEngine, SamplingConfig, until_mesh_end
from .errors import Ar3dError
from .quantize import fused

log = logging.getLogger(__name__)

ENGINES = ("auto", "graph", "transformers")


class UnsupportedModel(ValueError):
    """The model's architecture is not one the graph engine implements."""


class EngineChoiceError(Ar3dError, ValueError):
    """An engine was asked for by name that does not exist or cannot run the model."""


@dataclass
class _Stack:
    """The decoder's modules, borrowed from the model (never copied)."""

    embed: torch.nn.Module
    layers: list
    norm: torch.nn.Module
    lm_head: torch.nn.Module
    inv_freq: torch.Tensor
    rope_scale: float
    heads: int
    kv_heads: int
    head_dim: int


def unwrap_peft(model):
    """The transformers model inside peft wrappers (the model itself when there are none)."""
    for _ in range(4):  # peft's PeftModel → LoraModel → the transformers model
        inner = getattr(model, "get_base_model", None)
        if inner is None:
            break
        nxt = inner()
        if nxt is model:
            break
        model = nxt
    return model


def text_stack(model) -> _Stack:
    """The text decoder of a Qwen2 / Qwen2.5-VL model, or `UnsupportedModel` saying why not."""
    model = unwrap_peft(model)
    config = getattr(model.config, "text_config", None) or model.config
    if config.model_type not in ("qwen2", "qwen2_5_vl_text", "qwen2_5_vl"):
        raise UnsupportedModel(f"model type '{config.model_type}' (the graph engine knows Qwen2 and Qwen2.5-VL)")
    if getattr(config, "use_sliding_window", False):
        raise UnsupportedModel("sliding-window attention")
    if any(t != "full_attention" for t in (getattr(config, "layer_types", None) or [])):
        raise UnsupportedModel("layers other than full attention")
    rope = dict(getattr(config, "rope_parameters", None) or {})
    if rope.get("rope_type", "default") != "default":
        raise UnsupportedModel(f"rope type '{rope.get('rope_type')}'")
    if getattr(config, "hidden_act", "silu") != "silu":
        raise UnsupportedModel(f"activation '{config.hidden_act}'")
    inner = model.model
    text = getattr(inner, "language_model", inner)
    attn = text.layers[0].self_attn
    heads = config.num_attention_heads
    head_dim = getattr(attn, "head_dim", None) or config.hidden_size // heads
    return _Stack(
        embed=text.embed_tokens,
        layers=list(text.layers),
        norm=text.norm,
        lm_head=model.get_output_embeddings(),
        inv_freq=text.rotary_emb.inv_freq,
        rope_scale=float(getattr(text.rotary_emb, "attention_scaling", 1.0)),
        heads=heads,
        kv_heads=config.num_key_value_heads,
        head_dim=head_dim,
    )


def make_engine(model, pad_id: int, kind: str | None = None):
    """The engine for `model`: `kind` or ``$AR3D_ENGINE`` ("auto" = the graph engine when the model
    is supported, else transformers' `generate`)."""
    kind = (kind or os.environ.get("AR3D_ENGINE") or "auto").lower()
    if kind not in ENGINES:
        raise EngineChoiceError(f"unknown engine '{kind}': choose one of {', '.join(ENGINES)} (--engine or AR3D_ENGINE)")
    if kind == "transformers":
        return HFEngine(model, pad_id)
    try:
        return GraphEngine(model, pad_id)
    except UnsupportedModel as e:
        if kind == "graph":
            raise EngineChoiceError(f"the graph engine cannot run this model ({e}); use --engine transformers") from e
        log.info("graph engine unavailable (%s); using transformers' generate", e)
        return HFEngine(model, pad_id)


def _rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def _rope(x, cos, sin):
    return x * cos + _rotate_half(x) * sin


# The element-wise glue between the model's own matrix products. Written out (the same
# arithmetic as transformers' Qwen2 RMSNorm, rotary embedding and SwiGLU) so that on a GPU
# torch.compile can fuse each into one kernel: a 7B decode step is ~1,400 kernels otherwise,
# and in a CUDA graph every kernel costs launch time whatever its size.
def _rms(x, weight, eps: float):
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def _add_rms(x, delta, weight, eps: float):
    x = x + delta
    return x, _rms(x, weight, eps)


def _rope_qk(q, k, cos, sin):
    return _rope(q, cos, sin), _rope(k, cos, sin)


def _swiglu(gate, up):
    return F.silu(gate) * up


def _attend(q, keys, values, bias, scale: float):
    """Grouped-query attention of one new token over the static cache: q [B, kv, G, D]."""
    scores = torch.matmul(q, keys.transpose(-1, -2))
    probs = torch.softmax(scores.float() * scale + bias, dim=-1).to(q.dtype)
    return torch.matmul(probs, values)


_EAGER = {"rms": _rms, "add_rms": _add_rms, "rope_qk": _rope_qk, "swiglu": _swiglu, "attend": _attend}
_COMPILED: dict | None = None


def _fused_kernels() -> dict:
    global _COMPILED
    if _COMPILED is None:
        _COMPILED = {k: torch.compile(f, dynamic=False, fullgraph=True) for k, f in _EAGER.items()}
    return _COMPILED


def _eps(norm) -> float:
    return float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))


class _Batch:
    """Static state of one batch shape: KV cache, per-row position/token/constraint state, output.

    Everything the decode step reads or writes lives here, so a captured graph stays valid
    for every later batch of the same shape."""

    def __init__(self, stack: _Stack, rows: int, length: int, steps: int, dtype, device):
        shape = (rows, stack.kv_heads, length, stack.head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in stack.layers]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in stack.layers]
        positions = torch.arange(length, device=device, dtype=torch.float32)
        freqs = positions[:, None] * stack.inv_freq.to(device=device, dtype=torch.float32)[None]
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos, self.sin = emb.cos() * stack.rope_scale, emb.sin() * stack.rope_scale
        self.key_index = torch.arange(length, device=device)
        self.row_index = torch.arange(rows, device=device)
        self.token = torch.zeros(rows, dtype=torch.long, device=device)
        self.pos = torch.zeros(rows, dtype=torch.long, device=device)
        self.phase = torch.zeros(rows, dtype=torch.long, device=device)
        self.n = torch.zeros(rows, dtype=torch.long, device=device)
        self.out = torch.zeros(rows, steps, dtype=torch.long, device=device)
        self.logp = torch.zeros(rows, steps, dtype=torch.float32, device=device)  # log π of each sampled token
        # where row b's key/value head h sits in a layer's cache seen as [rows·kv·length, D]
        # (+ the row's position): one index_copy_ per cache write instead of advanced indexing
        self.cache_base = (self.row_index[:, None] * stack.kv_heads + torch.arange(stack.kv_heads, device=device)) * length
        self.nonfinite = torch.zeros(rows, dtype=torch.long, device=device)  # steps with NaN/inf logits, per row
        self.t = torch.zeros(1, dtype=torch.long, device=device)
        self.temperature = torch.ones((), dtype=torch.float32, device=device)
        self.top_p = torch.ones((), dtype=torch.float32, device=device)
        self.rows, self.length, self.steps = rows, length, steps
        self.graph: torch.cuda.CUDAGraph | None = None
        self.constraint: MeshConstraint | None = None  # the one the graph captured (kept alive)
        self.code_head: CodeHead | None = None  # the mesh-code step's head (None: full steps throughout)
        self.code_graph: torch.cuda.CUDAGraph | None = None  # that step, captured
        self.attention = None  # a `DecodeAttention` (CUDA graphs: reads each row's filled slots only)


class GraphEngine:
    """Static-cache decoding with the step captured as a CUDA graph (eager on CPU/MPS)."""

    name = "graph"

    def __init__(self, model, pad_id: int, cuda_graphs: bool | None = None, fuse: bool | None = None,
                 check_every: int | None = None, max_cached_batches: int = 4, code_steps: bool | None = None):  # fmt: skip
        """`cuda_graphs` / `fuse` (torch.compile of the element-wise glue): default on for CUDA.
        ``AR3D_ENGINE_FUSE=0`` turns fusion off (no compiler needed). `code_steps`: once no row is
        planning, decode over the mesh codes' rows of `lm_head` only (`core.code_head`; the same
        distribution, fewer bytes and logits a step); default on with CUDA graphs, where the head's
        bytes count, off in eager decoding so CPU draws stay those of earlier releases;
        ``AR3D_ENGINE_CODE_STEPS=0`` turns it off. ``AR3D_ENGINE_ATTENTION=1`` (with CUDA graphs)
        attends with a Triton kernel that reads each row's filled cache slots only
        (`core._decode_attention`, launch from ``AR3D_DECODE_ATTENTION``) instead of the masked
        product over the whole cache: 3–4% faster a mesh on an H100, off by default until the
        greedy-token CUDA test has run with its current merge (BENCHMARKS #20)."""
        text_stack(model)  # refuse unsupported models now, not at the first prompt
        self.model = model
        self.pad_id = pad_id
        self.cuda_graphs = cuda_graphs
        self.fuse = fuse if fuse is not None else os.environ.get("AR3D_ENGINE_FUSE", "1") != "0"
        self.check_every = check_every
        self.code_steps = code_steps if os.environ.get("AR3D_ENGINE_CODE_STEPS", "1") != "0" else False
        self.decode_attention = os.environ.get("AR3D_ENGINE_ATTENTION", "0") == "1"
        self._attention_failed: str | None = None
        self.max_cached_batches = max_cached_batches
        self._batches: OrderedDict[tuple, _Batch] = OrderedDict()
        self._graph_failed: str | None = None
        self._fuse_failed: str | None = None
        self._kernels = _EAGER
        self.last_timings: dict = {}

    def clear(self) -> None:
        """Free the cached KV caches and graphs (they are rebuilt on the next call)."""
        self._batches.clear()

    # --- the public call ----------------------------------------------------------------
    def generate(self, prompts, constraint: MeshConstraint, sampling: SamplingConfig, seed=None, on_token=None) -> EngineOutput:
        stack = text_stack(self.model)
        device = stack.embed.weight.device
        use_graphs = self.cuda_graphs if self.cuda_graphs is not None else device.type == "cuda"
        use_graphs = use_graphs and device.type == "cuda" and self._graph_failed is None
        self._kernels = _EAGER  # fused kernels only inside a graph capture, which falls back on failure
        if self.fuse and use_graphs and self._fuse_failed is None:
            self._kernels = _fused_kernels()
        # On the CPU a look at the state costs nothing next to a token, so cancel and progress
        # are checked every token: a cancel must land within a second even on a busy machine.
        check_every = self.check_every or (64 if use_graphs else 1 if device.type == "cpu" else 8)
        steps = constraint.max_plan_tokens + constraint.vocab.tokens_per_mesh + 2
        longest = max(len(p) for p in prompts)
        length = -(-(longest + steps) // 256) * 256  # bucketed, so most calls reuse a batch
        dtype = self._compute_dtype(stack)

        t0 = time.perf_counter()
        code_steps = self.code_steps if self.code_steps is not None else use_graphs
        with torch.inference_mode():
            batch = self._batch(stack, constraint, sampling, len(prompts), length, steps, dtype, device)
            batch.temperature.fill_(max(sampling.temperature, 1e-6))
            batch.top_p.fill_(sampling.top_p)
            self._prefill(stack, batch, prompts, constraint)
            if batch.graph is None:  # (re)built with the graphs; eager decoding looks again each call
                batch.code_head = CodeHead.of(stack.lm_head, constraint) if code_steps else None
                batch.attention = self._attention_for(stack, batch) if use_graphs else None
            if use_graphs and batch.graph is None:
                self._capture(stack, batch, constraint, sampling)
            if seed is not None:
                torch.manual_seed(seed)
            t_first = None
            done_at = 0
            coding_from = None  # the first step with no row planning (then the code head decodes)
            for t in range(steps):
                span = min(longest + t, length)  # eager: attend only to the filled part of the cache
                graph = batch.graph if coding_from is None else batch.code_graph
                if graph is not None:
                    graph.replay()
                elif coding_from is None:
                    self._step(stack, batch, constraint, sampling, span=span)
                else:
                    self._mesh_step(stack, batch, constraint, sampling, span=span)
                if t == 0 and device.type == "cuda":
                    torch.cuda.synchronize(device)
                    t_first = time.perf_counter() - t0
                # while rows plan, look every 8 steps (one sync each) for the switch to the code head
                if batch.code_head is not None and coding_from is None and (t + 1) % min(check_every, 8) == 0:
                    if bool((batch.phase != PLAN).all()):
                        coding_from = t + 1
                if t == 0 or (t + 1) % check_every == 0 or t + 1 == steps:  # the first: show "planning" at once
                    state = ConstraintState(batch.phase, batch.n)
                    if on_token is not None and on_token(state):
                        raise GenerationCancelled("generation cancelled")
                    if bool((batch.phase == DONE).all()):
                        done_at = t + 1
                        break
            rows = batch.out[:, : done_at or steps].tolist()
            logprobs = batch.logp[:, : done_at or steps].tolist()
            nonfinite = batch.nonfinite.tolist()
        seconds = time.perf_counter() - t0
        self.last_timings = {"first_token_s": t_first, "seconds": seconds,
                             "decode_steps": done_at or steps, "cuda_graph": batch.graph is not None,
                             "decode_attention": batch.attention is not None,
                             "code_steps": (done_at or steps) - coding_from if coding_from is not None else 0}  # fmt: skip
        completions = until_mesh_end(rows, constraint.vocab.end_id)
        logprobs = [lp[: len(c)] for lp, c in zip(logprobs, completions)]
        return EngineOutput(completions, seconds, nonfinite, logprobs)

    # --- batches and graphs ----------------------------------------------------------------
    def _compute_dtype(self, stack):
        dtype = stack.embed.weight.dtype
        if torch.is_autocast_enabled(stack.embed.weight.device.type):
            dtype = torch.get_autocast_dtype(stack.embed.weight.device.type)
        return dtype

    def _batch(self, stack, constraint, sampling, rows, length, steps, dtype, device) -> _Batch:
        # The weights' addresses are part of the key: a graph replays the kernels it captured,
        # reading whatever tensors lived at those addresses then.
        weights = tuple((p.data_ptr(), p.dtype) for p in self.model.parameters())
        modules = tuple(id(m) for m in self.model.modules())
        model_key = (hash(weights), hash(modules))
        key = (rows, length, steps, dtype, str(device), _sampling_key(sampling, constraint)) + model_key
        # Batches made for other weights or modules (quantized since, a checkpoint loaded into
        # new tensors) can never replay again, yet hold their KV caches and the code head's view
        # of the old `lm_head` (a view keeps its whole storage: 1.1 GB of bf16 at 7B). Drop them.
        for stale in [k for k in self._batches if k[-2:] != model_key]:
            del self._batches[stale]
        batch = self._batches.pop(key, None)
        if batch is None:
            while len(self._batches) >= self.max_cached_batches:
                self._batches.popitem(last=False)
            batch = _Batch(stack, rows, length, steps, dtype, device)
        self._batches[key] = batch
        return batch

    def _attention_for(self, stack, batch: _Batch):
        """The decode-attention kernel's scratch for this batch, or None (off, failed before, no Triton)."""
        if not self.decode_attention or self._attention_failed is not None:
            return None
        launch = attention_launch(os.environ.get("AR3D_DECODE_ATTENTION"))
        try:
            from ._decode_attention import DecodeAttention

            return DecodeAttention(batch.rows, stack.kv_heads, stack.heads // stack.kv_heads, batch.length,
                                   stack.head_dim, batch.k[0].device, **launch)  # fmt: skip
        except Exception as e:  # no Triton, an unsupported head size: the masked product serves
            self._attention_failed = f"{type(e).__name__}: {e}"
            return None

    def _capture(self, stack, batch: _Batch, constraint, sampling) -> None:
        try:
            batch.graph = self._graph_of(batch, lambda: self._step(stack, batch, constraint, sampling))
            batch.constraint = constraint
        except Exception as e:
            if batch.attention is not None:  # try without the Triton attention first (the likeliest cause)
                self._attention_failed = f"{type(e).__name__}: {e}"
                log.warning("capture with the decode-attention kernel failed (%s); capturing with the masked product",
                            self._attention_failed)  # fmt: skip
                batch.attention = None
                return self._capture(stack, batch, constraint, sampling)
            if self._kernels is not _EAGER:  # the compiler failed (no Triton, …): capture unfused
                self._fuse_failed = f"{type(e).__name__}: {e}"
                log.warning("fused kernels unavailable (%s); capturing the unfused step", self._fuse_failed)
                self._kernels = _EAGER
                return self._capture(stack, batch, constraint, sampling)
            # an op that cannot be captured: decode eagerly, same results
            self._graph_failed = f"{type(e).__name__}: {e}"
            log.warning("CUDA graph capture failed (%s); decoding eagerly", self._graph_failed)
            return
        if batch.code_head is not None:  # captured now, before the seed: draws stay reproducible
            try:
                # One memory pool for both graphs: they never replay at the same time and keep
                # no tensor of their own between replays (all state lives in `batch`), so the
                # code step's scratch can reuse the full step's (its own pool cost 1.35 GB in fp8 at 7B).
                batch.code_graph = self._graph_of(batch, lambda: self._mesh_step(stack, batch, constraint, sampling),
                                                  pool=batch.graph.pool())
            except Exception as e:  # the full step serves throughout, as without the code head
                batch.code_head = None
                log.warning("mesh-code step capture failed (%s); decoding with the full head", e)

    @staticmethod
    def _graph_of(batch: _Batch, step, pool=None) -> torch.cuda.CUDAGraph:
        """`step` captured (into another graph's memory `pool` if given); the state it advanced
        (warm-ups and capture) is put back afterwards."""
        state = (batch.token, batch.pos, batch.phase, batch.n, batch.t, batch.nonfinite)
        saved = [x.clone() for x in state]

        def restore():
            for x, s in zip(state, saved):
                x.copy_(s)

        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):  # warm-up: lazy initialisation happens outside the capture
                    step()
            torch.cuda.current_stream().wait_stream(side)
            restore()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                step()
            return graph
        except Exception:
            torch.cuda.synchronize()
            raise
        finally:
            restore()

    # --- prefill: each distinct prompt once, copied into its rows ----------------------------
    def _prefill(self, stack, batch: _Batch, prompts, constraint) -> None:
        device = batch.token.device
        if len(prompts) != batch.rows:
            raise ValueError("batch size mismatch")
        groups: dict[tuple, list[int]] = {}
        for i, p in enumerate(prompts):
            if not p:
                raise ValueError("empty prompt")
            groups.setdefault(tuple(p), []).append(i)
        for prompt, rows in groups.items():
            rows_t = torch.tensor(rows, device=device)
            if len(prompt) > 1:  # the last prompt token is fed by the first decode step
                ids = torch.tensor([prompt[:-1]], device=device)
                self._forward_prompt(stack, batch, ids, rows_t)
        last = torch.tensor([p[-1] for p in prompts], device=device)
        state = constraint.initial_state(last[:, None])
        batch.token.copy_(last)
        batch.pos.copy_(torch.tensor([len(p) - 1 for p in prompts], device=device))
        batch.phase.copy_(state.phase)
        batch.n.copy_(state.n)
        batch.out.fill_(self.pad_id)
        batch.logp.zero_()
        batch.nonfinite.zero_()
        batch.t.zero_()

    def _forward_prompt(self, stack, batch: _Batch, ids, rows) -> None:
        T = ids.shape[1]
        dtype = batch.k[0].dtype
        x = stack.embed(ids).to(dtype)
        cos = batch.cos[:T].to(dtype)[None, None]
        sin = batch.sin[:T].to(dtype)[None, None]
        for i, layer in enumerate(stack.layers):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            q, k, v = _qkv(attn, h)
            q = q.view(1, T, stack.heads, stack.head_dim).transpose(1, 2)
            k = k.view(1, T, stack.kv_heads, stack.head_dim).transpose(1, 2)
            v = v.view(1, T, stack.kv_heads, stack.head_dim).transpose(1, 2)
            q, k = _rope(q, cos, sin), _rope(k, cos, sin)
            batch.k[i][rows, :, :T] = k.to(dtype)
            batch.v[i][rows, :, :T] = v.to(dtype)
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=stack.head_dim**-0.5,
                                               enable_gqa=stack.heads != stack.kv_heads)  # fmt: skip
            x = x + attn.o_proj(o.transpose(1, 2).reshape(1, T, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))

    # --- one decode step: only static buffers, no host synchronisation --------------------
    def _step(self, stack, batch: _Batch, constraint: MeshConstraint, sampling: SamplingConfig, span=None) -> None:
        """`span`: how many cache positions can be filled (eager mode knows it; a graph reads all)."""
        h = self._trunk(stack, batch, span)
        logits = stack.lm_head(h)[:, 0].float()  # [B, 1, V] in, as transformers calls it (hooks see the same shapes)
        state = ConstraintState(batch.phase, batch.n)
        logits, bad = constraint.sanitize(logits, state)  # NaN/inf never reach the sampler
        token, logp = _sample(logits, sampling, batch.temperature, batch.top_p)
        self._commit(batch, constraint, state, token, logp, bad)

    def _mesh_step(self, stack, batch: _Batch, constraint: MeshConstraint, sampling: SamplingConfig, span=None) -> None:
        """`_step` once no row is planning: logits and sampling over the mesh codes only."""
        h = self._trunk(stack, batch, span)
        token, logp, bad = batch.code_head.sample(h[:, 0], ConstraintState(batch.phase, batch.n), sampling,
                                                  batch.temperature, batch.top_p)  # fmt: skip
        self._commit(batch, constraint, ConstraintState(batch.phase, batch.n), token, logp, bad)

    def _trunk(self, stack, batch: _Batch, span=None) -> torch.Tensor:
        """The decoder over each row's current token: writes the KV cache, returns the final
        normed hidden state [B, 1, hidden]."""
        B, G, D = batch.rows, stack.heads // stack.kv_heads, stack.head_dim
        span = span or batch.length
        dtype = batch.k[0].dtype
        pos = batch.pos
        x = stack.embed(batch.token[:, None]).to(dtype)  # [B, 1, hidden]
        cos = batch.cos.index_select(0, pos).to(dtype)[:, None, None]  # [B, 1, 1, D]
        sin = batch.sin.index_select(0, pos).to(dtype)[:, None, None]
        attention = batch.attention
        if attention is None:  # the masked product over `span` slots
            visible = batch.key_index[None, :span] <= pos[:, None]  # [B, T]: the prompt and what came since
            bias = torch.zeros(visible.shape, dtype=torch.float32, device=pos.device).masked_fill(~visible, float("-inf"))
            bias = bias[:, None, None, :]  # [B, 1, 1, T]
        scale = D**-0.5
        kern = self._kernels
        layers = stack.layers
        slots = (batch.cache_base + pos[:, None]).reshape(-1)  # [B·kv] rows of the flattened cache
        h = kern["rms"](x, layers[0].input_layernorm.weight, _eps(layers[0].input_layernorm))
        for i, layer in enumerate(layers):
            attn, mlp = layer.self_attn, layer.mlp
            q, k, v = _qkv(attn, h)
            q = q.view(B, 1, stack.heads, D).transpose(1, 2)
            k = k.view(B, 1, stack.kv_heads, D).transpose(1, 2)
            v = v.view(B, 1, stack.kv_heads, D).transpose(1, 2)
            q, k = kern["rope_qk"](q, k, cos, sin)
            batch.k[i].view(-1, D).index_copy_(0, slots, k.reshape(B * stack.kv_heads, D).to(dtype))
            batch.v[i].view(-1, D).index_copy_(0, slots, v.reshape(B * stack.kv_heads, D).to(dtype))
            # grouped-query attention without repeating K/V: [B, kv, G, D] @ [B, kv, D, T]
            if attention is not None:
                o = attention(q.reshape(B, stack.kv_heads, G, D), batch.k[i], batch.v[i], pos, scale)
            else:
                o = kern["attend"](q.reshape(B, stack.kv_heads, G, D), batch.k[i][:, :, :span], batch.v[i][:, :, :span], bias, scale)
            post = layer.post_attention_layernorm
            x, h = kern["add_rms"](x, attn.o_proj(o.reshape(B, 1, stack.heads * D)), post.weight, _eps(post))
            gate, up = fused(mlp, "ar3d_gate_up", h) or (mlp.gate_proj(h), mlp.up_proj(h))
            y = mlp.down_proj(kern["swiglu"](gate, up))
            nxt = layers[i + 1].input_layernorm if i + 1 < len(layers) else stack.norm
            x, h = kern["add_rms"](x, y, nxt.weight, _eps(nxt))  # the residual add fused with the next norm
        return h

    @staticmethod
    def _commit(batch: _Batch, constraint: MeshConstraint, state: ConstraintState, token, logp, bad) -> None:
        """Record the step's tokens and move every row's position and constraint state on."""
        batch.nonfinite.add_(bad.long())
        new = constraint.advance(state, token)
        batch.out.index_copy_(1, batch.t, token[:, None])
        batch.logp.index_copy_(1, batch.t, logp[:, None])
        batch.t.add_(1)
        batch.token.copy_(token)
        batch.phase.copy_(new.phase)
        batch.n.copy_(new.n)
        batch.pos.copy_(torch.clamp(batch.pos + 1, max=batch.length - 1))  # finished rows idle at the end


def attention_launch(spec: str | None) -> dict:
    """AR3D_DECODE_ATTENTION="chunk,block_t,block_d,warps,stages" (`scripts/bench_attention.py`
    prints the fastest on your GPU) → the kernel's launch; unset: its defaults."""
    if not spec:
        return {}
    names = ("chunk", "block_t", "block_d", "num_warps", "num_stages")
    try:
        values = [int(x) for x in spec.split(",")]
        if len(values) != len(names) or any(v < 1 for v in values) or any(v & (v - 1) for v in values[:4]):
            raise ValueError
    except ValueError:
        raise ValueError(f"AR3D_DECODE_ATTENTION={spec!r}: five positive integers chunk,block_t,block_d,warps,stages "
                         "(the first four powers of two), as scripts/bench_attention.py prints; or unset it") from None  # fmt: skip
    return dict(zip(names, values))


def _qkv(attn, h):
    """q, k, v: one product when the layers are stored fused (8-bit weights), else three."""
    return fused(attn, "ar3d_qkv", h) or (attn.q_proj(h), attn.k_proj(h), attn.v_proj(h))


def _sampling_key(sampling: SamplingConfig, constraint: MeshConstraint) -> tuple:
    """What a captured graph bakes in (temperature and top-p live in buffers instead)."""
    return (sampling.greedy, sampling.top_k, sampling.top_p < 1.0, constraint.max_plan_tokens,
            constraint.vocab_size, tuple(constraint.stop_ids), constraint.vocab.start_id)  # fmt: skip
