"""The graph engine's mesh-code steps (`core.code_head`): once no row plans, the head covers the
codes' rows of `lm_head` only. Same tokens (greedy), same distribution and log-probs (sampled),
same handling of non-finite logits as the full step. On this CPU they run eagerly with
``code_steps=True``; a GPU runs the captured step too (the `device` parameter)."""

import numpy as np
import pytest
import torch

from ar3d.core.code_head import CodeHead
from ar3d.core.constraint import DONE, MESH, ConstraintState, MeshConstraint
from ar3d.core.engine import HFEngine, SamplingConfig
from ar3d.core.graph_engine import GraphEngine
from ar3d.core.policy import Policy
from ar3d.core.quantize import QuantLinear, quantize_model

# the tests folder is on sys.path (rootdir conftest, no package): transformers' warpers, the chi-square test
from test_graph_engine import _homogeneity_p, _reference_probs  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
PROMPTS = ["a chair with four legs", "a tall vase", "a round wooden table with one thick central leg and a glass top"]


@pytest.fixture(scope="module", params=DEVICES)
def tiny(request, tiny_policy_dir):
    return Policy.load(tiny_policy_dir, device=request.param, dtype="float32")


def _ids(result):
    return [[s.completion_ids for s in sample.steps] for sample in result.samples]


def test_greedy_tokens_equal_transformers_with_code_steps(tiny):
    """Rows of different prompt lengths and plan lengths, both steps of a two-step rollout."""
    pad = tiny.pad_id
    greedy = SamplingConfig(temperature=0, max_plan_tokens=24)
    engine = GraphEngine(tiny.model, pad, code_steps=True)
    a = Policy(tiny.model, tiny.tokenizer, engine=HFEngine(tiny.model, pad)).generate(
        PROMPTS, two_step=True, sampling=greedy, seed=1)  # fmt: skip
    b = Policy(tiny.model, tiny.tokenizer, engine=engine).generate(PROMPTS, two_step=True, sampling=greedy, seed=1)
    assert _ids(a) == _ids(b)
    assert engine.last_timings["code_steps"] >= 1024  # the code head really wrote the meshes


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_code_graph_shares_the_full_steps_memory_pool(tiny_policy_dir):
    """The code step's graph is captured into the full step's memory pool: a second private pool
    cost 1.35 GB of peak memory in fp8 at the 7B shape (BENCHMARKS, #20). Sharing is safe only
    because the two never replay together and keep no tensor between replays, so the sampled
    tokens must still equal the full-head run's under greedy decoding."""
    policy = Policy.load(tiny_policy_dir, device="cuda", dtype="float32", engine="graph")
    greedy = SamplingConfig(temperature=0, max_plan_tokens=24)
    on = GraphEngine(policy.model, policy.pad_id, code_steps=True)
    off = GraphEngine(policy.model, policy.pad_id, code_steps=False)
    a = Policy(policy.model, policy.tokenizer, engine=on).generate(PROMPTS, two_step=True, sampling=greedy, seed=1)
    b = Policy(policy.model, policy.tokenizer, engine=off).generate(PROMPTS, two_step=True, sampling=greedy, seed=1)
    assert _ids(a) == _ids(b)
    batches = [batch for batch in on._batches.values() if batch.code_graph is not None]
    assert batches, "no mesh-code graph was captured"
    assert all(batch.code_graph.pool() == batch.graph.pool() for batch in batches)


def test_code_steps_default_off_on_cpu_and_env_switch(tiny_policy, monkeypatch):
    """Eager CPU decoding keeps the full head (its seeded draws unchanged); the env var turns the
    code head off everywhere."""
    cfg = SamplingConfig(max_plan_tokens=4)
    engine = GraphEngine(tiny_policy.model, tiny_policy.pad_id)
    Policy(tiny_policy.model, tiny_policy.tokenizer, engine=engine).generate("a chair", sampling=cfg, seed=0)
    assert engine.last_timings["code_steps"] == 0
    monkeypatch.setenv("AR3D_ENGINE_CODE_STEPS", "0")
    engine = GraphEngine(tiny_policy.model, tiny_policy.pad_id, code_steps=True)
    Policy(tiny_policy.model, tiny_policy.tokenizer, engine=engine).generate("a chair", sampling=cfg, seed=0)
    assert engine.last_timings["code_steps"] == 0


def _constraint(policy, tokens_per_mesh=1024):
    import dataclasses

    vocab = dataclasses.replace(policy.vocab, tokens_per_mesh=tokens_per_mesh)
    return MeshConstraint(vocab, policy.vocab_size, policy.stop_ids, 8, tokenizer_size=len(policy.tokenizer))


@pytest.mark.parametrize("sampling", [
    SamplingConfig(temperature=0.7, top_p=0.7, top_k=8),
    SamplingConfig(temperature=1.3, top_p=0.9, top_k=0),
    SamplingConfig(temperature=1.0, top_p=1.0, top_k=8192),  # k above the code count: no top-k at all
])  # fmt: skip
def test_code_head_draws_the_masked_full_distribution(tiny_policy, sampling):
    """For one hidden state, the code head's draws and log-probs are those of the full head's
    logits masked by the constraint and warped by transformers (20k draws, 5 sigma)."""
    torch.manual_seed(0)
    policy = tiny_policy
    head = policy.model.get_output_embeddings()
    constraint = _constraint(policy)
    h = torch.randn(1, head.in_features) * 8  # peaked enough that 20k draws test each likely token
    with torch.no_grad():
        state1 = ConstraintState(torch.tensor([MESH]), torch.tensor([5]))
        full = constraint.mask_logits(head(h).float(), state1)
        expected = _reference_probs(full, sampling)
        n = 20_000
        code_head = CodeHead.of(head, constraint)
        state = ConstraintState(torch.full((n,), MESH), torch.full((n,), 5))
        token, logp, bad = code_head.sample(h.expand(n, -1), state, sampling, torch.tensor(sampling.temperature),
                                            torch.tensor(sampling.top_p))  # fmt: skip
    assert not bad.any()
    assert bool(policy.vocab.is_code(token.numpy()).all())
    assert torch.allclose(logp, expected[token].log().float(), atol=1e-4)
    freq = torch.bincount(token, minlength=expected.numel()).double() / n
    sigma = (expected.double() * (1 - expected.double()) / n).sqrt()
    common = expected * n > 10  # 5 sigma per token, where a token is drawn often enough to count
    assert torch.all((freq - expected.double()).abs()[common] <= 5 * sigma[common])
    assert torch.all(freq[expected == 0] == 0) and common.sum() > 1  # masked never drawn; really sampled


def test_forced_tokens_and_non_finite_code_logits(tiny_policy):
    """After the last code: <mesh-end>; DONE rows: the filler; both at log-prob 0. All-NaN code
    logits (an overflowing model) draw uniformly among the codes and are reported."""
    policy = tiny_policy
    head = policy.model.get_output_embeddings()
    constraint = _constraint(policy)
    code_head = CodeHead.of(head, constraint)
    state = ConstraintState(torch.tensor([MESH, MESH, DONE, MESH]), torch.tensor([3, 1024, 0, 7]))
    h = torch.randn(4, head.in_features)
    h[3] = float("nan")
    cfg = SamplingConfig(temperature=1.0, top_p=1.0, top_k=0)
    with torch.no_grad():
        token, logp, bad = code_head.sample(h, state, cfg, torch.tensor(1.0), torch.tensor(1.0))
    v = policy.vocab
    assert bool(v.is_code(token[[0, 3]].numpy()).all())
    assert token[1] == v.end_id and token[2] == constraint.done_id
    assert logp[1] == 0 and logp[2] == 0 and bad.tolist() == [False, False, False, True]
    assert torch.isfinite(logp).all()


def test_nan_code_rows_still_make_valid_meshes(tiny_policy_dir):
    """End to end: a model whose code rows of lm_head are NaN still writes 1024 valid codes with
    the code head, and every such step is counted as non-finite."""
    policy = Policy.load(tiny_policy_dir, device="cpu", dtype="float32")
    v = policy.vocab
    with torch.no_grad():
        policy.model.get_output_embeddings().weight[v.code_offset : v.code_offset + v.num_codes] = float("nan")
    policy.engine = GraphEngine(policy.model, policy.pad_id, code_steps=True)
    res = policy.generate(["a chair", "a lamp"], sampling=SamplingConfig(max_plan_tokens=4), seed=0)
    assert all(s.steps[0].codes.shape == (1024,) for s in res.samples)
    assert all(n >= 1024 for n in res.diagnostics["step1_nonfinite_logits"])


def test_heads_it_cannot_slice_fall_back_to_the_full_step(tiny_policy):
    """A hooked head (the hook expects full logits) or a head of another type: no code head, and
    generation still holds the constraint through the full step."""
    policy = tiny_policy
    head = policy.model.get_output_embeddings()
    constraint = _constraint(policy)
    handle = head.register_forward_hook(lambda m, i, out: out)
    try:
        assert CodeHead.of(head, constraint) is None
    finally:
        handle.remove()
    assert CodeHead.of(torch.nn.Sequential(head), constraint) is None
    assert CodeHead.of(head, constraint) is not None


def test_quantized_head_rows_share_the_storage(tiny_policy_dir):
    """An 8-bit head: the code head's rows are views of the QuantLinear (an in-place
    requantization is seen), and greedy tokens equal the full step's."""
    from ar3d.core.quantize import requantize_

    policy = Policy.load(tiny_policy_dir, device="cpu", dtype="float32")
    quantize_model(policy.model, "fp8")
    head = policy.model.get_output_embeddings()
    assert type(head) is QuantLinear
    constraint = _constraint(policy)
    code_head = CodeHead.of(head, constraint)
    v = policy.vocab
    h = torch.randn(3, head.in_features)
    with torch.no_grad():
        assert torch.allclose(code_head.project(h), head(h)[:, v.code_offset : v.code_offset + v.num_codes])
        requantize_(head, torch.randn(head.out_features, head.in_features))
        assert torch.allclose(code_head.project(h), head(h)[:, v.code_offset : v.code_offset + v.num_codes])
    greedy = SamplingConfig(temperature=0, max_plan_tokens=8)
    out = []
    for code_steps in (False, True):
        policy.engine = GraphEngine(policy.model, policy.pad_id, code_steps=code_steps)
        out.append(_ids(policy.generate(["a chair", "a tall vase with two handles"], sampling=greedy, seed=0)))
    assert out[0] == out[1]


def test_batches_of_replaced_weights_are_dropped(tiny_policy_dir):
    """Quantizing (or loading new tensors) after generating: the batches cached for the old
    weights can never replay, and the code head's view would keep the whole old `lm_head`
    alive (the +1.2 GB an fp8 benchmark after a bf16 run measured at 7B, BENCHMARKS #20)."""
    import gc
    import weakref

    policy = Policy.load(tiny_policy_dir, device="cpu", dtype="float32")
    engine = GraphEngine(policy.model, policy.pad_id, code_steps=True)
    policy.engine = engine
    cfg = SamplingConfig(max_plan_tokens=4)
    policy.generate("a chair", sampling=cfg, seed=0)
    (batch,) = engine._batches.values()
    assert batch.code_head is not None
    old_batch = weakref.ref(batch)
    del batch
    quantize_model(policy.model, "fp8")
    policy.generate("a chair", sampling=cfg, seed=0)
    gc.collect()
    assert len(engine._batches) == 1 and old_batch() is None
    (batch,) = engine._batches.values()
    assert type(policy.model.get_output_embeddings()) is QuantLinear and batch.code_head is not None


def test_sampled_generation_keeps_the_distribution(small_pair):
    """End to end through generate: 2000 samples of one prompt, first two mesh codes, the code
    head against transformers (chi-square, as tests/test_graph_engine.py does for the full step)."""
    policy = Policy.load(small_pair, device="cpu", dtype="float32")
    cfg = SamplingConfig(temperature=1.0, top_k=6, top_p=0.95, max_plan_tokens=1)
    constraint = MeshConstraint(_constraint(policy, 8).vocab, policy.vocab_size, policy.stop_ids, cfg.max_plan_tokens)
    prompt = policy.prompt_ids([{"role": "user", "content": "a chair"}])
    n = 2000
    pad = policy.tokenizer.pad_token_id
    start = constraint.vocab.start_id

    def codes(engine, seed):
        out = engine.generate([prompt] * n, constraint, cfg, seed=seed)
        return np.array([c[c.index(start) + 1 : c.index(start) + 3] for c in out.completions])

    engine = GraphEngine(policy.model, pad, code_steps=True)
    b = codes(engine, 1)
    assert engine.last_timings["code_steps"] > 0
    a = codes(HFEngine(policy.model, pad), 0)
    for i in range(2):
        assert len(set(b[:, i])) >= 2
        assert _homogeneity_p(a[:, i], b[:, i]) > 1e-3
