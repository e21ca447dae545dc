"""The mesh-token grammar holds whatever the logits say."""

import pytest
import torch

from ar3d.core.constraint import DONE, MESH, PLAN, ConstraintState, MeshConstraint
from ar3d.core.engine import SamplingConfig
from ar3d.core.tokens import MeshVocab

V = 40
VOCAB = MeshVocab(code_offset=20, num_codes=16, start_id=36, end_id=37, tokens_per_mesh=4)
EOS, PAD = 2, 3


def make(max_plan=3):
    return MeshConstraint(VOCAB, V, [EOS, PAD], max_plan)


def state(phase, n):
    return ConstraintState(torch.tensor(phase), torch.tensor(n))


def allowed(c, phase, n):
    logits = torch.randn(len(phase), V)
    return torch.isfinite(c.mask_logits(logits, state(phase, n)))


def test_allowed_sets_per_phase():
    c = make()
    a = allowed(c, [PLAN, PLAN, MESH, MESH, DONE], [0, 3, 0, 4, 0])
    codes = torch.zeros(V, dtype=torch.bool)
    codes[20:36] = True
    text = [t for t in range(20) if t not in (EOS, PAD)]
    assert a[0, text].all() and not a[0, 20:36].any() and a[0, 36] and not a[0, 37]  # free plan
    assert not a[0, EOS] and not a[0, PAD]  # ending the turn is not possible before a mesh
    assert a[1].nonzero().flatten().tolist() == [36]  # plan budget spent: <mesh-start> forced
    assert torch.equal(a[2], codes)  # mesh: codes only
    assert a[3].nonzero().flatten().tolist() == [37]  # 4 codes written: <mesh-end> forced
    assert a[4].nonzero().flatten().tolist() == [EOS]


def test_stop_mass_moves_to_mesh_start():
    c = make()
    logits = torch.full((1, V), -5.0)
    logits[0, EOS] = 3.0
    logits[0, 36] = 1.0
    out = c.mask_logits(logits, state([PLAN], [0]))
    p = torch.softmax(out, -1)
    q = torch.softmax(logits[0, list(range(20)) + [36, 38, 39]], -1)  # over the plan's tokens
    expected = q[[EOS, PAD, 20]].sum()
    assert p[0, 36].item() == pytest.approx(expected.item(), rel=1e-5)


def test_forced_tokens_survive_minus_inf_logits():
    c = make()
    logits = torch.randn(2, V)
    logits[:, 36] = float("-inf")
    logits[:, 37] = float("-inf")
    out = c.mask_logits(logits, state([PLAN, MESH], [3, 4]))
    assert out[0, 36] == 0 and out[1, 37] == 0
    assert torch.isneginf(out[0, :36]).all() and torch.isneginf(out[1, :37]).all()


def test_completion_states_match_token_by_token():
    c = make(max_plan=5)
    completion = torch.tensor([[5, 6, 36, 20, 21, 22, 23, 37, 2], [36, 30, 31, 32, 33, 37, 2, 3, 3]])
    st = c.initial_state(torch.tensor([[1, 1], [1, 1]]))
    phases, ns = [], []
    for t in range(completion.shape[1]):
        phases.append(st.phase)
        ns.append(st.n)
        st = c.advance(st, completion[:, t])
    whole = c.completion_states(completion, c.initial_state(torch.tensor([[1, 1], [1, 1]])))
    assert torch.equal(whole.phase, torch.stack(phases, 1))
    assert torch.equal(whole.n, torch.stack(ns, 1))
    reasoning, mesh = c.loss_masks(completion, c.initial_state(torch.tensor([[1], [1]])))
    assert reasoning[0].tolist() == [True, True] + [False] * 7
    assert mesh[0].tolist() == [False] * 3 + [True] * 4 + [False] * 2
    assert mesh[1].tolist() == [False] + [True] * 4 + [False] * 4


def test_prompt_ending_in_mesh_start_begins_in_mesh():
    c = make()
    st = c.initial_state(torch.tensor([[4, 36]]))
    assert st.phase.item() == MESH and st.n.item() == 0
    whole = c.completion_states(torch.tensor([[20, 21, 22, 23, 37]]), st)
    assert whole.phase.tolist() == [[MESH] * 5] and whole.n.tolist() == [[0, 1, 2, 3, 4]]


def test_batched_3d_logits():
    c = make()
    logits = torch.randn(2, 9, V)
    st = ConstraintState(torch.full((2, 9), MESH), torch.arange(9).expand(2, 9))
    out = c.mask_logits(logits, st)
    assert torch.isfinite(out[:, :4, 20:36]).all() and torch.isneginf(out[:, :4, :20]).all()
    assert (torch.isfinite(out[:, 4:]).sum(-1) == 1).all()


# --- adversarial logits on a real (tiny) Qwen2.5-VL policy ------------------------------------
ADVERSARIES = ["end_early", "text_in_mesh", "stop_at_once", "never_start"]


def test_constraint_holds_under_adversarial_logits(tiny_policy):
    """One batch, one adversary per row (a hook adds a per-row bias to the real model's logits)."""
    p = tiny_policy
    v = p.vocab
    bias = torch.zeros(len(ADVERSARIES), 1, p.vocab_size)
    bias[0, :, v.end_id] = 1e4  # wants to close the mesh at once
    bias[1, :, : v.code_offset] = 1e4  # every text token beats every code
    bias[2, :, p.stop_ids] = 1e4  # wants to end the turn without a mesh
    bias[3, :, [v.start_id, v.end_id]] = float("-inf")  # never opens or closes a mesh
    hook = p.model.get_output_embeddings().register_forward_hook(lambda m, i, out: out + bias.to(out.dtype))
    try:
        out = p.generate(["a chair"] * len(ADVERSARIES), samples=1, seed=0, sampling=SamplingConfig(max_plan_tokens=8))
    finally:
        hook.remove()
    for adversary, sample in zip(ADVERSARIES, out.samples):
        step = sample.steps[0]
        ids = step.completion_ids
        codes, repair = v.codes_from_ids(ids)  # strict parse: no repair needed
        assert not repair and codes.shape == (1024,), adversary
        assert ids[-1] == v.end_id and ids.count(v.start_id) == 1, adversary
        start = ids.index(v.start_id)
        assert start <= 8 and bool(v.is_code(ids[start + 1 : -1]).all()), adversary
        assert sum(step.mesh_mask) == 1024 and sum(step.reasoning_mask) == start, adversary
    assert out.samples[2].steps[0].completion_ids.index(v.start_id) == 0  # the stop mass became <mesh-start>
    assert out.samples[3].steps[0].completion_ids.index(v.start_id) == 8  # forced when the budget ran out


def test_padding_rows_beyond_the_tokenizer_are_never_allowed():
    c = MeshConstraint(VOCAB, V, [EOS, PAD], 3, tokenizer_size=38)  # ids 38, 39: lm_head padding
    a = allowed(c, [PLAN, MESH, MESH, DONE], [0, 0, 4, 0])
    assert not a[:, 38:].any()
    assert a[0, :20].sum() == 18  # the real text tokens still are (all but EOS, PAD)


def test_sanitize_nan_and_inf_on_the_device():
    c = make()
    st = state([PLAN, MESH, MESH, PLAN], [0, 0, 0, 0])
    logits = torch.randn(4, V)
    logits[0] = float("nan")  # nothing usable: uniform over what is allowed
    logits[1, 25] = float("inf")  # overflowed upwards: the most likely code, finite
    logits[2, 3] = float("-inf")  # a -inf alone is recorded, the row is otherwise fine
    out, bad = c.sanitize(logits, st)
    assert bad.tolist() == [True, True, True, False]
    assert not torch.isnan(out).any() and not torch.isposinf(out).any()
    assert torch.equal(out[0], c.mask_logits(torch.zeros(1, V), state([PLAN], [0]))[0])  # uniform, allowed only
    assert out[1].argmax() == 25 and torch.isfinite(out[1, 20:36]).all()
    probs = (out / 0.7).softmax(-1)
    assert torch.isfinite(probs).all() and torch.allclose(probs.sum(-1), torch.ones(4))
