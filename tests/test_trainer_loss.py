"""Hi-GRPO loss, advantages and dynamic sampling against hand-computed values; log-probs against a slow reference."""

import math
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from ar3d.core.constraint import DONE, MESH, PLAN
from ar3d.core.engine import SamplingConfig
from ar3d.trainer.advantages import DynamicSampling, group_advantages, step_rewards, zero_spread
from ar3d.trainer.loss import LossConfig, completion_logprobs, k3_kl, pack, policy_loss

EPS_LOW, EPS_HIGH = 0.2, 0.28


def _t(x, grad=False):
    return torch.tensor(x, dtype=torch.float32, requires_grad=grad)


# --- the clipped surrogate -----------------------------------------------------------------


def test_clipping_both_sides_and_the_unclipped_side():
    # One sequence per token so that each token has its own A; old logp 0 → r = exp(logp).
    r = [1.5, 0.5, 1.5, 0.5, 1.1]
    A = [1.0, -2.0, -1.0, 1.0, 2.0]
    logp = _t([[math.log(x)] for x in r], grad=True)
    old = torch.zeros(5, 1)
    mask = torch.ones(5, 1, dtype=torch.bool)
    cfg = LossConfig(eps_low=EPS_LOW, eps_high=EPS_HIGH, beta=0.0)
    loss, stats = policy_loss(logp, old, None, _t(A), mask, cfg)

    def clip(x):
        return min(max(x, 1 - EPS_LOW), 1 + EPS_HIGH)

    per_token = [-min(ri * ai, clip(ri) * ai) for ri, ai in zip(r, A)]
    # by hand: r=1.5,A=+1 → capped at 1.28; r=0.5,A=−2 → floored at 0.8·(−2); the other sides keep r·A
    assert per_token == pytest.approx([-1.28, 1.6, 1.5, -0.5, -2.2])
    assert loss.item() == pytest.approx(sum(per_token) / 5, abs=1e-6)
    for i in range(5):  # token by token, so that no two errors can cancel in the mean
        one, _ = policy_loss(logp[i : i + 1].detach(), old[i : i + 1], None, _t(A[i : i + 1]), mask[i : i + 1], cfg)
        assert one.item() == pytest.approx(per_token[i], abs=1e-6)

    (grad,) = torch.autograd.grad(loss, logp)
    # d/dlogp of −r·A/N is −r·A/N where the clip does not bind, 0 where it does
    expected = [0.0, 0.0, -(1.5 * -1.0) / 5, -(0.5 * 1.0) / 5, -(1.1 * 2.0) / 5]
    assert grad[:, 0].tolist() == pytest.approx(expected, abs=1e-6)
    assert stats["clip_frac_high"] == pytest.approx(1 / 5)
    assert stats["clip_frac_low"] == pytest.approx(1 / 5)
    assert stats["ratio_mean"] == pytest.approx(sum(r) / 5, abs=1e-6)
    assert stats["tokens"] == 5.0 and "kl" not in stats
    assert all(isinstance(v, float) for v in stats.values())


def test_clip_off_is_the_plain_surrogate():
    r, A = [1.5, 0.5, 1.5, 0.5], [1.0, -1.0, -1.0, 1.0]
    logp = _t([[math.log(x)] for x in r], grad=True)
    loss, stats = policy_loss(logp, torch.zeros(4, 1), None, _t(A), torch.ones(4, 1, dtype=torch.bool),
                              LossConfig(clip=False, beta=0.0))  # fmt: skip
    assert loss.item() == pytest.approx(-sum(ri * ai for ri, ai in zip(r, A)) / 4, abs=1e-6)
    (grad,) = torch.autograd.grad(loss, logp)
    assert grad[:, 0].tolist() == pytest.approx([-ri * ai / 4 for ri, ai in zip(r, A)], abs=1e-6)
    assert stats["clip_frac_low"] == stats["clip_frac_high"] == 0.0


def test_k3_kl_value_and_beta():
    logp = [[-1.0, -2.0, -0.5]]
    ref = [[-1.5, -1.0, -0.5]]
    kl = [math.exp(b - a) - (b - a) - 1 for a, b in zip(logp[0], ref[0])]
    assert kl[2] == 0.0 and all(k > 0 for k in kl[:2])
    assert k3_kl(_t(logp), _t(ref))[0].tolist() == pytest.approx(kl, abs=1e-6)

    mask = torch.ones(1, 3, dtype=torch.bool)
    zero_adv = torch.zeros(1)  # r = 1 on-policy and A = 0: only β·KL is left
    lp = _t(logp, grad=True)
    loss, stats = policy_loss(lp, None, _t(ref), zero_adv, mask, LossConfig(beta=0.01))
    assert loss.item() == pytest.approx(0.01 * sum(kl) / 3, abs=1e-7)
    assert stats["kl"] == pytest.approx(sum(kl) / 3, abs=1e-6)
    # gradient of β·k3 w.r.t. logp: β·(1 − π_ref/π_θ)/N
    (grad,) = torch.autograd.grad(loss, lp)
    expected = [0.01 * (1 - math.exp(b - a)) / 3 for a, b in zip(logp[0], ref[0])]
    assert grad[0].tolist() == pytest.approx(expected, abs=1e-7)

    for cfg, ref_lp in ((LossConfig(beta=0.0), _t(ref)), (LossConfig(beta=0.01), None)):
        loss, stats = policy_loss(_t(logp, grad=True), None, ref_lp, zero_adv, mask, cfg)
        assert loss.item() == 0.0 and "kl" not in stats


def _two_rows():
    """Rows of 3 and 1 loss tokens (row 0 has a padded tail), different r and A per row."""
    logp = _t([[math.log(1.1), math.log(0.9), math.log(1.05), 0.0], [math.log(1.2), 0.0, 0.0, 0.0]], grad=True)
    old = torch.zeros(2, 4)
    A = _t([1.0, -2.0])
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    return logp, old, A, mask


def test_token_and_sequence_aggregation_with_unequal_lengths():
    logp, old, A, mask = _two_rows()
    row0 = [-1.1 * 1.0, -0.9 * 1.0, -1.05 * 1.0]  # all inside [0.8, 1.28]
    row1 = [-1.2 * -2.0]
    token = (sum(row0) + sum(row1)) / 4
    sequence = (sum(row0) / 3 + sum(row1) / 1) / 2
    lt, _ = policy_loss(logp, old, None, A, mask, LossConfig(beta=0.0, aggregation="token"))
    ls, _ = policy_loss(logp, old, None, A, mask, LossConfig(beta=0.0, aggregation="sequence"))
    assert lt.item() == pytest.approx(token, abs=1e-6)
    assert ls.item() == pytest.approx(sequence, abs=1e-6)
    assert abs(token - sequence) > 0.1  # the two normalisations really differ here


def test_masked_tokens_change_nothing():
    logp, old, A, mask = _two_rows()
    ref = logp.detach() - 0.3
    cfg = LossConfig(beta=0.05)
    base, stats = policy_loss(logp, old, ref, A, mask, cfg)
    (g_base,) = torch.autograd.grad(base, logp)
    # garbage everywhere outside the mask, including inf and NaN
    logp2 = logp.detach().clone()
    logp2[~mask] = 50.0
    logp2.requires_grad_(True)
    old2, ref2 = old.clone(), ref.clone()
    old2[~mask] = -float("inf")
    ref2[~mask] = float("nan")
    for agg in ("token", "sequence"):
        c = LossConfig(beta=0.05, aggregation=agg)
        a, _ = policy_loss(logp, old, ref, A, mask, c)
        b, stats2 = policy_loss(logp2, old2, ref2, A, mask, c)
        assert torch.isfinite(b) and b.item() == pytest.approx(a.item(), abs=1e-6)
        (g2,) = torch.autograd.grad(b, logp2)
        assert torch.all(g2[~mask] == 0) and torch.isfinite(g2).all()
    assert stats2["tokens"] == stats["tokens"] == 4.0
    assert torch.all(g_base[~mask] == 0) and torch.all(g_base[mask] != 0)
    # a fully masked row's advantage may be NaN (an invalid sample) without poisoning the loss
    A_nan = A.clone()
    mask_one = mask.clone()
    mask_one[1] = False
    A_nan[1] = float("nan")
    x, _ = policy_loss(logp, old, ref, A_nan, mask_one, cfg)
    y, _ = policy_loss(logp, old, ref, A, mask_one, cfg)
    assert x.item() == pytest.approx(y.item())


@pytest.mark.parametrize("agg", ["token", "sequence"])
def test_global_normaliser_makes_micro_batches_equal_one_batch(agg):
    torch.manual_seed(0)
    B, T = 4, 6
    logp = (torch.randn(B, T) * 0.1 - 1).requires_grad_(True)
    old = logp.detach() + torch.randn(B, T) * 0.1
    ref = logp.detach() + torch.randn(B, T) * 0.1
    A = torch.tensor([1.0, -0.5, 0.3, -1.2])
    lengths = [6, 1, 4, 2]  # micro-batches of unequal token counts
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    cfg = LossConfig(aggregation=agg)
    full, _ = policy_loss(logp, old, ref, A, mask, cfg)
    (g_full,) = torch.autograd.grad(full, logp)

    total_tokens, total_seqs = float(mask.sum()), float(B)
    grads, naive = [], []
    for rows in (slice(0, 2), slice(2, 4)):
        lp = logp.detach()[rows].clone().requires_grad_(True)
        part, _ = policy_loss(lp, old[rows], ref[rows], A[rows], mask[rows], cfg,
                              num_tokens=total_tokens, num_sequences=total_seqs)  # fmt: skip
        grads.append(torch.autograd.grad(part, lp)[0])
        lp2 = logp.detach()[rows].clone().requires_grad_(True)
        local, _ = policy_loss(lp2, old[rows], ref[rows], A[rows], mask[rows], cfg)
        naive.append(torch.autograd.grad(local, lp2)[0] / 2)  # averaging micro-batch losses
    assert torch.allclose(torch.cat(grads), g_full, atol=1e-7)
    if agg == "token":  # the per-micro-batch count would weight tokens unequally
        assert not torch.allclose(torch.cat(naive), g_full, atol=1e-4)


# --- advantages and dynamic sampling ---------------------------------------------------------


def _pop_std(xs):
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))


def test_group_advantages_with_lambda_combined_rewards():
    nan = float("nan")
    r_high = np.array([[0.2, 0.4, 0.6, 0.8], [1.0, 1.0, 1.0, 1.0], [0.3, nan, 0.5, 0.1], [nan, nan, 0.7, 0.2]])
    r_low = np.array([[0.1, 0.0, 0.3, 0.2], [0.5, 0.5, 0.5, 0.5], [0.2, 0.4, nan, 0.0], [0.1, 0.9, 0.2, nan]])
    r1, r2 = step_rewards(r_high, r_low, lam=1.0)
    assert np.isnan(r1[2, 1]) and np.isnan(r1[2, 2])  # a missing reward in either step loses the sample
    assert r1[0].tolist() == pytest.approx([0.3, 0.4, 0.9, 1.0])
    r1_half, _ = step_rewards(r_high, r_low, lam=0.5)
    assert r1_half[0].tolist() == pytest.approx([0.25, 0.4, 0.75, 0.9])

    adv1, valid1 = group_advantages(r1, eps=1e-4)
    adv2, valid2 = group_advantages(r2, eps=1e-4)
    g0 = [0.3, 0.4, 0.9, 1.0]
    m, s = sum(g0) / 4, _pop_std(g0)
    assert adv1[0].tolist() == pytest.approx([(x - m) / (s + 1e-4) for x in g0])
    assert s != pytest.approx(np.std(g0, ddof=1))  # population, not sample std
    # a tied group: A = 0 (the eps keeps it finite), still valid
    assert adv1[1].tolist() == [0.0] * 4 and valid1[1].all()
    # NaNs: the statistics use the valid samples only
    g2 = [0.5, 0.1]  # r1 row 2: samples 0 and 3 are valid
    m, s = sum(g2) / 2, _pop_std(g2)
    assert valid1[2].tolist() == [True, False, False, True]
    assert adv1[2, [0, 3]].tolist() == pytest.approx([(x - m) / (s + 1e-4) for x in g2])
    assert np.isnan(adv1[2, 1]) and np.isnan(adv1[2, 2])
    # fewer than two valid samples: the whole group is invalid
    assert r1[3, 2] == pytest.approx(0.9) and not valid1[3].any() and np.isnan(adv1[3]).all()
    # step 2 uses R_low alone
    g = [0.1, 0.9, 0.2]
    m, s = sum(g) / 3, _pop_std(g)
    assert adv2[3, :3].tolist() == pytest.approx([(x - m) / (s + 1e-4) for x in g]) and not valid2[3, 3]
    # eps matters for a two-sample group [0, 1]: std 0.5
    adv, _ = group_advantages(np.array([[0.0, 1.0]]), eps=1e-4)
    assert adv[0].tolist() == pytest.approx([-0.5 / 0.5001, 0.5 / 0.5001], rel=1e-9)


def test_zero_spread_uses_a_tolerance_not_the_mean():
    nan = float("nan")
    r = np.array(
        [
            [0.0, 1.0],  # same mean as the next row, but it has spread
            [0.5, 0.5],
            [0.3, 0.3 + 1e-9],  # continuous rewards tied up to float noise
            [0.3, 0.3 + 1e-3],
            [nan, 0.7],  # one valid sample: nothing to compare
            [nan, nan],
        ]
    )
    assert zero_spread(r).tolist() == [False, True, True, False, True, True]
    assert np.mean(r[0]) == np.mean(r[1])  # a mean-based filter could not tell these apart
    three = np.array([[0.2, nan, 0.2 + 1e-9], [0.2, nan, 0.25]])
    assert zero_spread(three).tolist() == [True, False]
    assert zero_spread(np.array([[0.3, 0.3 + 1e-3]]), tol=1e-2).tolist() == [True]


def test_dynamic_sampling_keeps_groups_that_can_learn():
    flat, spread = [0.5, 0.5, 0.5 + 1e-9], [0.1, 0.5, 0.9]
    # groups: both steps flat / step 1 flat only / step 2 flat only / neither
    r1 = np.array([flat, flat, spread, spread])
    r2 = np.array([flat, spread, flat, spread])

    ds = DynamicSampling(target_groups=3)  # drop_when="all" by default
    assert ds.add(["g0", "g1", "g2", "g3"], r1, r2) == ["g1", "g2", "g3"]
    assert ds.full and not ds.exhausted and ds.dropped_fraction == pytest.approx(1 / 4)

    ds = DynamicSampling(target_groups=3, drop_when="any", max_extra_batches=1)
    assert ds.add(["g0", "g1", "g2", "g3"], r1, r2) == ["g3"]
    assert not ds.full and not ds.exhausted and ds.dropped_fraction == pytest.approx(3 / 4)
    assert ds.add(["h0", "h1", "h2", "h3"], r1, r2) == ["h3"]
    assert ds.groups == ["g3", "h3"] and not ds.full and ds.exhausted  # one extra batch, used up
    assert ds.dropped_fraction == pytest.approx(6 / 8)
    ds.reset()
    assert ds.groups == [] and ds.dropped_fraction == 0.0 and not ds.exhausted

    # surplus beyond the target is discarded, not counted as dropped
    ds = DynamicSampling(target_groups=2)
    assert ds.add(["a", "b", "c", "d"], r1, r2) == ["b", "c"] and ds.full
    assert ds.dropped_fraction == pytest.approx(1 / 4)

    # one-step training: step 1 only; disabled: keep everything
    ds = DynamicSampling(target_groups=4)
    assert ds.add(["a", "b", "c", "d"], r1) == ["c", "d"]
    ds = DynamicSampling(target_groups=4, enabled=False)
    assert ds.add(["a", "b", "c", "d"], r1, r2) == ["a", "b", "c", "d"] and ds.full
    assert ds.dropped_fraction == 0.0
    with pytest.raises(ValueError):
        DynamicSampling(target_groups=2, drop_when="mean")


# --- log-probs of the sampling distribution -----------------------------------------------------

TEMPERATURE = 0.9
SAMPLING = SamplingConfig(temperature=TEMPERATURE, top_p=1.0, top_k=0, max_plan_tokens=4)


@contextmanager
def _one_thread():
    """A tiny model runs token by token far faster on one thread (and the suite shares the CPU)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _slow_logprobs(model, constraint, step):
    """Token by token with a KV cache: logits → mask_logits(state from advance) → /T → log_softmax."""
    logps, ents = [], []
    with torch.no_grad():
        ids = torch.tensor([step.prompt_ids])
        out = model(input_ids=ids, use_cache=True)
        cache, logits, pos = out.past_key_values, out.logits[:, -1].float(), ids.shape[1]
        state = constraint.initial_state(ids)
        for i, tok in enumerate(step.completion_ids):
            if i:
                state = constraint.advance(state, torch.tensor([step.completion_ids[i - 1]]))
            lsm = torch.log_softmax(constraint.mask_logits(logits, state) / TEMPERATURE, dim=-1)[0]
            logps.append(lsm[tok].item())
            p = lsm.exp()
            ents.append(-(p[p > 0] * lsm[p > 0]).sum().item())
            out = model(input_ids=torch.tensor([[tok]]), past_key_values=cache,
                        position_ids=torch.tensor([[pos]]), use_cache=True)  # fmt: skip
            cache, logits, pos = out.past_key_values, out.logits[:, -1].float(), pos + 1
    return torch.tensor(logps), torch.tensor(ents)


def test_completion_logprobs_match_the_sampling_distribution(tiny_policy):
    policy, model = tiny_policy, tiny_policy.model
    constraint = policy.constraint(SAMPLING)
    with _one_thread():
        # prompts of different lengths, so the right padding and per-row offsets are exercised
        prompts = ["a chair", "a tall round lamp with a wide shade"]
        result = policy.generate(prompts, samples=1, sampling=SAMPLING, seed=5)
        steps = [s.steps[0] for s in result.samples]
        assert len({len(s.prompt_ids) for s in steps}) == 2
        slow = [_slow_logprobs(model, constraint, s) for s in steps]

    pad = policy.tokenizer.pad_token_id
    packed = pack(steps, pad)
    try:
        logp, ent = completion_logprobs(model, packed, constraint, TEMPERATURE, chunk=257)
        assert logp.requires_grad and logp.dtype == torch.float32
        for b, (ref_lp, ref_ent) in enumerate(slow):
            n = len(steps[b].completion_ids)
            assert torch.allclose(logp[b, :n].detach(), ref_lp, atol=1e-4), (logp[b, :n] - ref_lp).abs().max()
            assert torch.allclose(ent[b, :n], ref_ent, atol=1e-3)
            assert torch.all(logp[b, n:] == 0)
        # the forward path (for wrapped models) and the no-grad path agree
        with torch.no_grad():
            via_forward, _ = completion_logprobs(model, packed, constraint, TEMPERATURE, chunk=1000, use_forward=True)
            no_grad, _ = completion_logprobs(model, packed, constraint, TEMPERATURE)
        assert torch.allclose(via_forward, logp.detach(), atol=1e-5)
        assert torch.allclose(no_grad, logp.detach(), atol=1e-5)

        # forced tokens (<mesh-start> after max_plan_tokens, <mesh-end> after 1024 codes) have logp 0
        init = constraint.initial_state(torch.tensor([[s.prompt_ids[-1]] for s in steps]))
        st = constraint.completion_states(packed.completion_ids, init)
        forced = packed.completion_mask & (
            ((st.phase == PLAN) & (st.n >= SAMPLING.max_plan_tokens))
            | ((st.phase == MESH) & (st.n >= 1024))
            | (st.phase == DONE)
        )
        assert forced.sum() >= len(steps)  # at least every <mesh-end>
        assert torch.all(logp[forced] == 0) and torch.all(packed.completion_ids[forced] != pad)
        for b, (ref_lp, _) in enumerate(slow):
            assert torch.all(ref_lp[forced[b, : len(ref_lp)]] == 0)
        free = packed.completion_mask & ~forced
        assert torch.all(logp[free] < 0)

        # the loss mask is exactly the reasoning + mesh tokens the policy chose
        for b, s in enumerate(steps):
            n = len(s.completion_ids)
            assert packed.loss_mask[b, :n].tolist() == [r or m for r, m in zip(s.reasoning_mask, s.mesh_mask)]
            assert not packed.loss_mask[b, n:].any() and not (packed.loss_mask[b] & forced[b]).any()
            assert int(packed.mesh_mask[b].sum()) == 1024
        assert packed.num_tokens == sum(sum(s.reasoning_mask) + sum(s.mesh_mask) for s in steps)

        A = torch.tensor([1.0, -1.0])
        loss, stats = policy_loss(logp, None, None, A, packed.loss_mask, LossConfig(beta=0.0), entropy=ent)
        (g,) = torch.autograd.grad(loss, logp, retain_graph=True)
        expected = torch.where(packed.loss_mask, -A[:, None] / packed.num_tokens, torch.zeros_like(logp))
        assert torch.allclose(g, expected, atol=1e-9)
        assert stats["tokens"] == packed.num_tokens and stats["ratio_mean"] == pytest.approx(1.0)
        assert stats["entropy"] > 0

        # gradients reach the model's parameters through logp
        model.zero_grad(set_to_none=True)
        loss.backward()
        named = dict(model.named_parameters())
        head = model.lm_head.weight.grad
        assert head is not None and head.abs().sum() > 0
        embed = model.get_input_embeddings().weight.grad
        assert embed is not None and embed.abs().sum() > 0
        layer = [p.grad for n, p in named.items() if "layers.0" in n and "q_proj.weight" in n]
        assert layer and layer[0] is not None and layer[0].abs().sum() > 0
    finally:
        model.zero_grad(set_to_none=True)  # the policy fixture is shared


def test_pack_layout_and_errors():
    class Row:
        def __init__(self, p, c, r, m):
            self.prompt_ids, self.completion_ids, self.reasoning_mask, self.mesh_mask = p, c, r, m

    rows = [
        Row([1, 2, 3], [7, 8], [True, False], [False, False]),
        Row([4], [9, 10, 11], [False, True, True], [False] * 3),
    ]
    pb = pack(rows, pad_id=0)
    assert pb.input_ids.tolist() == [[1, 2, 3, 7, 8], [4, 9, 10, 11, 0]]
    assert pb.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    assert pb.prompt_lens.tolist() == [3, 1]
    assert pb.completion_ids.tolist() == [[7, 8, 0], [9, 10, 11]]
    assert pb.completion_mask.tolist() == [[True, True, False], [True, True, True]]
    assert pb.loss_mask.tolist() == [[True, False, False], [False, True, True]]
    assert pb.num_tokens == 3 and pb.num_sequences == 2 and len(pb) == 2
    with pytest.raises(ValueError):
        pack([Row([1], [2, 3], [True], [False, False])], pad_id=0)
    with pytest.raises(ValueError):
        pack([Row([1], [2], [True], [True])], pad_id=0)
