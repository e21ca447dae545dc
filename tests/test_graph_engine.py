"""The graph engine (static KV cache, on-device sampling and constraint, CUDA graphs on a GPU)
against the reference path, transformers' `generate` with the same constraint.

On this CPU machine the decode step runs eagerly; the CUDA-graph path is the same step
captured, and these tests run it too wherever a GPU is present (the `device` parameter)."""


import numpy as np
import pytest
import torch

from ar3d.core.engine import GenerationCancelled, HFEngine, SamplingConfig
from ar3d.core.graph_engine import GraphEngine, _sample, make_engine
from ar3d.core.policy import Policy

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
PROMPTS = ["a chair with four legs", "a tall vase", "a round wooden table with one thick central leg and a glass top"]


def _pair(model, tokenizer):
    pad = tokenizer.pad_token_id
    return Policy(model, tokenizer, engine=HFEngine(model, pad)), Policy(model, tokenizer, engine=GraphEngine(model, pad))


@pytest.fixture(scope="module", params=DEVICES)
def tiny(request, tiny_policy_dir):
    policy = Policy.load(tiny_policy_dir, device=request.param, dtype="float32")
    return policy.model, policy.tokenizer


def _ids(result):
    return [[s.completion_ids for s in sample.steps] for sample in result.samples]


@pytest.mark.parametrize("max_plan", [0, 24])
def test_greedy_tokens_equal_transformers(tiny, max_plan):
    """Rows of different prompt lengths and a repeated prompt (shared prefill), both steps."""
    hf, graph = _pair(*tiny)
    greedy = SamplingConfig(temperature=0, max_plan_tokens=max_plan)
    a = hf.generate(PROMPTS, samples=2, two_step=True, sampling=greedy, seed=1)
    b = graph.generate(PROMPTS, samples=2, two_step=True, sampling=greedy, seed=1)
    assert b.engine == "graph" and a.engine == "transformers"
    assert _ids(a) == _ids(b)
    assert all(1026 <= len(s.completion_ids) <= max_plan + 1026 for sample in b.samples for s in sample.steps)


def test_demo_model_greedy_equal():
    """The bundled demo model (trained weights: real plans of varying length) — same tokens."""
    policy = Policy.load(None, device="cpu", dtype="float32")
    hf, graph = _pair(policy.model, policy.tokenizer)
    greedy = SamplingConfig(temperature=0, max_plan_tokens=64)
    a = hf.generate(["a stool with three legs", "a snowman with arms"], two_step=False, sampling=greedy, seed=0)
    b = graph.generate(["a stool with three legs", "a snowman with arms"], two_step=False, sampling=greedy, seed=0)
    assert _ids(a) == _ids(b)
    assert all(len(s.plans[0]) > 20 for s in b.samples)  # the model really wrote plans


def _reference_probs(logits, sampling):
    """transformers' own warpers, applied as `generate` does, then softmax."""
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    scores = TemperatureLogitsWarper(sampling.temperature)(None, logits.clone())
    if sampling.top_k:
        scores = TopKLogitsWarper(sampling.top_k)(None, scores)
    if sampling.top_p < 1:
        scores = TopPLogitsWarper(sampling.top_p)(None, scores)
    return scores.softmax(-1)[0]


@pytest.mark.parametrize("sampling", [
    SamplingConfig(temperature=0.7, top_p=0.7, top_k=8),
    SamplingConfig(temperature=1.3, top_p=0.9, top_k=0),
    SamplingConfig(temperature=1.0, top_p=1.0, top_k=0),
    SamplingConfig(temperature=0.5, top_p=1.0, top_k=3),
])  # fmt: skip
def test_sampler_draws_the_warped_distribution(sampling):
    """The on-device sampler's frequencies over 60k draws match transformers' warped probabilities."""
    torch.manual_seed(0)
    logits = torch.randn(1, 40) * 2
    logits[0, 5] = float("-inf")  # a masked token is never drawn
    expected = _reference_probs(logits, sampling)
    n = 60_000
    draws, logp = _sample(logits.expand(n, -1).clone(), sampling, torch.tensor(sampling.temperature), torch.tensor(sampling.top_p))
    # the reported log-prob of each draw is that of the warped distribution it came from
    assert torch.allclose(logp, expected[draws].log().float(), atol=1e-5)
    freq = torch.bincount(draws, minlength=40).double() / n
    sigma = (expected.double() * (1 - expected.double()) / n).sqrt()
    assert torch.all((freq - expected.double()).abs() <= 5 * sigma + 1e-9), (freq, expected)
    assert torch.all(freq[expected == 0] == 0)
    assert (expected > 0).sum() > 1  # not degenerate


def test_sampled_token_frequencies_match_transformers(small_pair):
    """End to end through both engines' generate: 2000 samples each of one prompt, compared on
    the first plan token and the first two mesh codes. Meshes are 8 codes here (a constraint
    with a short mesh) so that many samples are cheap; the code path is the same."""
    import dataclasses

    from ar3d.core.constraint import MeshConstraint

    policy = Policy.load(small_pair, device="cpu", dtype="float32")
    vocab = dataclasses.replace(policy.vocab, tokens_per_mesh=8)
    cfg = SamplingConfig(temperature=1.0, top_k=6, top_p=0.95, max_plan_tokens=1)
    constraint = MeshConstraint(vocab, policy.vocab_size, policy.stop_ids, cfg.max_plan_tokens)
    prompt = policy.prompt_ids([{"role": "user", "content": "a chair"}])
    n = 2000
    pad = policy.tokenizer.pad_token_id

    def draws(engine, seed):
        out = engine.generate([prompt] * n, constraint, cfg, seed=seed).completions
        first = np.array([c[0] for c in out])
        codes = np.array([c[c.index(vocab.start_id) + 1 : c.index(vocab.start_id) + 3] for c in out])
        return first, codes[:, 0], codes[:, 1]

    hf = draws(HFEngine(policy.model, pad), 0)
    graph = draws(GraphEngine(policy.model, pad), 1)
    for i, (a, b) in enumerate(zip(hf, graph)):
        assert len(set(b)) >= 2 and (i > 0 or len(set(b)) <= 6)  # really sampled; top-k where the context is fixed
        assert _homogeneity_p(a, b) > 1e-3, (i, np.unique(a, return_counts=True), np.unique(b, return_counts=True))
    again = draws(GraphEngine(policy.model, pad), 1)
    assert all(np.array_equal(x, y) for x, y in zip(graph, again))  # same seed, same draws


def _homogeneity_p(a, b):
    """Chi-square two-sample test that a and b come from one distribution (rare tokens pooled)."""
    from scipy.stats import chi2_contingency

    keys, counts = np.unique(np.concatenate([a, b]), return_counts=True)
    common = keys[counts >= 20]
    table = [[np.isin(x, common, invert=True).sum()] + [(x == k).sum() for k in common] for x in (a, b)]
    table = np.array(table)
    table = table[:, table.sum(0) > 0]
    return chi2_contingency(table).pvalue


def test_homogeneity_test_has_power():
    """The frequency test above can fail: a temperature change of 1.0 → 1.5 is detected."""
    torch.manual_seed(0)
    logits = torch.randn(1, 30) * 2
    a, _ = _sample(logits.expand(2000, -1).clone(), SamplingConfig(temperature=1.0, top_k=0, top_p=1.0), torch.tensor(1.0), torch.tensor(1.0))
    b, _ = _sample(logits.expand(2000, -1).clone(), SamplingConfig(temperature=1.5, top_k=0, top_p=1.0), torch.tensor(1.5), torch.tensor(1.0))
    assert _homogeneity_p(a.numpy(), b.numpy()) < 1e-6


def test_seed_reproducible_and_cancellable(tiny_policy):
    graph = Policy(tiny_policy.model, tiny_policy.tokenizer, engine="graph")
    cfg = SamplingConfig(temperature=1.0, max_plan_tokens=8)
    a = graph.generate("a lamp", samples=2, sampling=cfg, seed=3)
    b = graph.generate("a lamp", samples=2, sampling=cfg, seed=3)
    c = graph.generate("a lamp", samples=2, sampling=cfg, seed=4)
    assert _ids(a) == _ids(b) and _ids(a) != _ids(c)
    assert len(graph.engine._batches) == 1  # the same shape reuses its cache

    events = []
    with pytest.raises(GenerationCancelled):
        graph.generate("a lamp", sampling=cfg, progress=events.append, should_stop=lambda: len(events) >= 3)
    assert events and events[-1].mesh_tokens < 1024

    seen = []
    graph.generate("a lamp", sampling=cfg, progress=seen.append, seed=0)
    tokens = [e.mesh_tokens for e in seen]
    assert tokens == sorted(tokens) and tokens[-1] == 1024


def test_weights_are_shared_not_copied(tiny_policy_dir):
    """An in-place update (what an optimizer step does) reaches the next call with no sync."""
    policy = Policy.load(tiny_policy_dir, device="cpu", dtype="float32")
    hf, graph = _pair(policy.model, policy.tokenizer)
    greedy = SamplingConfig(temperature=0, max_plan_tokens=4)
    before = _ids(graph.generate("a cup", sampling=greedy))
    with torch.no_grad():
        for p in policy.model.model.language_model.layers[0].mlp.parameters():
            p.mul_(-3.0)
        policy.model.lm_head.weight.add_(torch.randn_like(policy.model.lm_head.weight))
    after = _ids(graph.generate("a cup", sampling=greedy))
    assert after != before and after == _ids(hf.generate("a cup", sampling=greedy))


def test_lora_model(tiny_policy_dir):
    """A peft LoRA-wrapped policy (the trainer's setting): adapters are part of the step."""
    peft = pytest.importorskip("peft")
    policy = Policy.load(tiny_policy_dir, device="cpu", dtype="float32")
    model = peft.get_peft_model(policy.model, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a trained adapter, so it changes the output
    hf, graph = _pair(model, policy.tokenizer)
    greedy = SamplingConfig(temperature=0, max_plan_tokens=6)
    a, b = hf.generate(PROMPTS[:2], sampling=greedy), graph.generate(PROMPTS[:2], sampling=greedy)
    assert _ids(a) == _ids(b)
    with model.disable_adapter():
        plain = graph.generate(PROMPTS[:2], sampling=greedy)
    assert _ids(plain) != _ids(b)


def test_engine_selection(tiny_policy_dir, monkeypatch):
    policy = Policy.load(tiny_policy_dir, device="cpu")
    assert policy.engine.name == "graph"  # auto picks it for Qwen2.5-VL
    monkeypatch.setenv("AR3D_ENGINE", "transformers")
    assert Policy.load(tiny_policy_dir, device="cpu").engine.name == "transformers"
    monkeypatch.setenv("AR3D_ENGINE", "warp")
    with pytest.raises(ValueError, match="unknown engine 'warp'"):
        Policy.load(tiny_policy_dir, device="cpu")
    monkeypatch.delenv("AR3D_ENGINE")
    # an architecture it does not implement: auto falls back, an explicit request says why
    policy.model.config.text_config.use_sliding_window = True
    try:
        assert make_engine(policy.model, 0).name == "transformers"
        with pytest.raises(ValueError, match="sliding-window"):
            make_engine(policy.model, 0, "graph")
    finally:
        policy.model.config.text_config.use_sliding_window = False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_cuda_graph_is_used(tiny_policy_dir, monkeypatch):
    """Captured with the masked product by default; AR3D_ENGINE_ATTENTION=1 captures the
    decode-attention kernel, with the same greedy tokens (fp32: the kernel's dots are IEEE, not TF32)."""
    plain = Policy.load(tiny_policy_dir, device="cuda", dtype="float32", engine="graph")
    greedy = SamplingConfig(temperature=0, max_plan_tokens=4)
    a = plain.generate(PROMPTS, samples=2, sampling=greedy, seed=0)
    assert plain.engine.last_timings["cuda_graph"] and plain.engine._graph_failed is None
    assert not plain.engine.last_timings["decode_attention"]
    monkeypatch.setenv("AR3D_ENGINE_ATTENTION", "1")
    policy = Policy.load(tiny_policy_dir, device="cuda", dtype="float32", engine="graph")
    b = policy.generate(PROMPTS, samples=2, sampling=greedy, seed=0)
    assert policy.engine.last_timings["cuda_graph"] and policy.engine.last_timings["decode_attention"], policy.engine._attention_failed
    assert _ids(a) == _ids(b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the Triton kernel needs a GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decode_attention_equals_the_masked_product(dtype):
    """Each row attends to its slots 0 … pos only: positions at the start, on and beside a slice
    boundary and at the cache's end give what the eager masked product over the whole cache gives."""
    from ar3d.core._decode_attention import DecodeAttention
    from ar3d.core.graph_engine import _attend

    torch.manual_seed(0)
    B, KV, G, D, L = 6, 4, 7, 128, 320
    q = torch.randn(B, KV, G, D, device="cuda", dtype=dtype)
    k = torch.randn(B, KV, L, D, device="cuda", dtype=dtype) * 3  # peaked scores: a wrong mask shows
    v = torch.randn(B, KV, L, D, device="cuda", dtype=dtype)
    attention = DecodeAttention(B, KV, G, L, D, "cuda")
    c = attention.chunk  # slice boundaries of the default launch
    pos = torch.tensor([0, c - 1, c, c + 1, 2 * c + 17, L - 1], device="cuda").clamp(max=L - 1)
    visible = torch.arange(L, device="cuda")[None, :] <= pos[:, None]
    bias = torch.zeros(B, L, device="cuda").masked_fill(~visible, float("-inf"))[:, None, None, :]
    ref = _attend(q.float(), k.float(), v.float(), bias, D**-0.5)
    got = attention(q, k, v, pos, D**-0.5)
    assert got.dtype == dtype and got.shape == ref.shape
    tol = 1e-4 if dtype == torch.float32 else 3e-2
    assert torch.allclose(got.float(), ref, atol=tol, rtol=tol), (got.float() - ref).abs().max()


# --- NaN / ±inf logits (fp16 overflow on GPUs without bf16) and lm_head padding rows ------------
def _poison_lm_head(model, poison):
    """A forward hook on lm_head that rewrites its output, as an overflowing model would."""
    head = model.get_output_embeddings()

    def hook(module, args, out):
        out = out.clone()
        poison(out)
        return out

    return head.register_forward_hook(hook)


@pytest.mark.parametrize("engine", ["graph", "transformers"])
def test_nan_and_inf_logits_are_sanitized_and_recorded(tiny, engine):
    """Row 0: every logit NaN; row 1: +inf on a text token and a mesh code, -inf on others; row 2
    clean. Every row still ends as a valid mesh, and the result says which rows were hit."""
    model, tokenizer = tiny
    policy = Policy(model, tokenizer, engine=engine)
    text_id = tokenizer.convert_tokens_to_ids("a") if "a" in tokenizer.get_vocab() else 10
    code_id = policy.vocab.code_offset + 3

    def poison(out):  # [B, T, V]
        out[0] = float("nan")
        out[1, ..., text_id] = float("inf")
        out[1, ..., code_id] = float("inf")
        out[1, ..., :5] = float("-inf")

    handle = _poison_lm_head(model, poison)
    try:
        res = policy.generate(["a chair", "a vase", "a lamp"], sampling=SamplingConfig(max_plan_tokens=4), seed=0)
    finally:
        handle.remove()
    assert res.engine == engine
    for sample in res.samples:  # _parse already checked: plan, <mesh-start>, 1024 codes, <mesh-end>
        (step,) = sample.steps
        assert len(step.codes) == policy.vocab.tokens_per_mesh
    hit = res.diagnostics["step1_nonfinite_logits"]
    assert hit[0] > 1000 and hit[1] > 1000 and hit[2] == 0, hit  # row 2 never saw a bad logit
    row1 = res.samples[1].steps[0]
    assert (row1.codes == 3).all(), "+inf on a code is the most likely code, not an error"
    assert row1.completion_ids[: row1.completion_ids.index(policy.vocab.start_id)] == [text_id] * 4


@pytest.mark.parametrize("engine", ["graph", "transformers"])
def test_plan_never_samples_lm_head_padding_rows(tiny, engine):
    """The checkpoint pads lm_head beyond the tokenizer; even when those rows have the largest
    logits, plans hold only ids the tokenizer knows (they enter plan texts and the trainer's masks)."""
    model, tokenizer = tiny
    policy = Policy(model, tokenizer, engine=engine)
    size = len(tokenizer)
    assert policy.vocab_size > size, "the tiny policy must have padding rows for this test"

    def poison(out):
        out[..., size:] = 50.0

    handle = _poison_lm_head(model, poison)
    try:
        res = policy.generate(["a chair", "a vase"], sampling=SamplingConfig(max_plan_tokens=6), seed=0)
    finally:
        handle.remove()
    for sample in res.samples:
        ids = sample.steps[0].completion_ids
        assert max(ids) < size, [i for i in ids if i >= size]
        assert len(ids) == 6 + 1026  # the plan ran to its cap on real tokens


def test_reported_logprobs_are_the_trainers(tiny_policy):
    """With the training sampler (top-k 0, top-p 1) the engine's log π of every token equals the
    trainer's `completion_logprobs` of the same completion: 8-bit rollouts are weighted by the
    difference, so bf16 rollouts must give none."""
    from ar3d.trainer.loss import completion_logprobs, pack

    graph = Policy(tiny_policy.model, tiny_policy.tokenizer, engine="graph")
    cfg = SamplingConfig(temperature=0.9, top_p=1.0, top_k=0, max_plan_tokens=6)
    out = graph.generate("a lamp", samples=3, two_step=True, sampling=cfg, seed=5)
    for k in (0, 1):
        rows = [s.steps[k] for s in out.samples]
        assert all(len(r.sample_logprobs) == len(r.completion_ids) for r in rows)
        packed = pack(rows, graph.pad_id)
        with torch.no_grad():
            logp, _ = completion_logprobs(graph.model, packed, graph.constraint(cfg), cfg.temperature)
        for b, r in enumerate(rows):
            n = len(r.completion_ids)
            assert torch.allclose(logp[b, :n], torch.tensor(r.sample_logprobs), atol=1e-4), k
            assert r.sample_logprobs[-1] == 0.0  # <mesh-end> after 1024 codes is forced: π = 1
            assert all(lp < 0 for lp, m in zip(r.sample_logprobs, r.mesh_mask) if m)  # chosen codes


def test_decode_attention_launch_from_the_environment():
    """AR3D_DECODE_ATTENTION pins the kernel's launch as scripts/bench_attention.py prints it;
    anything else is refused naming the format (not silently ignored)."""
    from ar3d.core.graph_engine import attention_launch

    assert attention_launch(None) == {} and attention_launch("") == {}
    assert attention_launch("128,64,32,4,3") == dict(chunk=128, block_t=64, block_d=32, num_warps=4, num_stages=3)
    for bad in ("128,64,32,4", "100,64,32,4,3", "a,b,c,d,e", "128,64,32,4,0"):
        with pytest.raises(ValueError, match="AR3D_DECODE_ATTENTION=.*chunk,block_t,block_d,warps,stages"):
            attention_launch(bad)
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import bench_attention  # what the benchmark prints is what the engine reads back

    for cfg in bench_attention.configs():
        assert attention_launch(bench_attention._key(cfg)) == cfg
