"""The trainer's step-time options (issue #16's 7B step, issue #20's 8-bit option): 8-bit
rollouts — the decoder swapped for 8-bit copies of its current weights while generating, the
training weights untouched, the loss weighted by truncated importance ratios —; π_old read off
the first update when that is exact; updates in slices of rows (`train.rows_per_forward`).

The fp8/int8 Triton kernels need a CUDA GPU. On this CPU machine `QuantLinear` computes with its
dequantized 8-bit weights — the same numbers the kernel multiplies — so everything but the kernel
runs for real here; the trainer's GPU check is the one thing patched (said where), and the CUDA
test at the end runs the kernel path on a lent GPU.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import torch

from ar3d.core.rewards import RewardConfig, RewardEnsemble, SampleScore, TermConfig


class Fill:
    name, sub_scores, value_range, needs = "fill", 1, (0.0, 1.0), frozenset({"occupancy"})

    def score(self, batch):
        return [SampleScore(float(np.asarray(g).mean())) for g in batch.occupancy]


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("data") / "prompts.txt"
    p.write_text("a box\na chair\na tall tower\na mug\n")
    return p


def _trainer(tmp, pair, prompts, **over):
    from ar3d.trainer.config import TrainConfig
    from ar3d.trainer.trainer import HiGRPOTrainer

    t = {
        "model": {"policy": str(pair), "dtype": "fp32", "gradient_checkpointing": False,
                  "lora": {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0}},
        "data": {"path": str(prompts), "seed": 0},
        "rollout": {"group_size": 4, "prompts_per_step": 1, "two_step": True,
                    "sampling": {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_plan_tokens": 4}},
        "rewards": {"preset": "geometry"},
        "algorithm": {"updates_per_batch": 2, "beta": 0.01, "max_extra_batches": 1},
        "optim": {"lr": 1e-2, "warmup_steps": 0, "scheduler": "constant"},
        "train": {"steps": 2, "grad_accum": 1, "seed": 0},
        "checkpoint": {"dir": str(tmp / "ckpt"), "every": 100, "export_final": False},
        "logging": {"dir": str(tmp / "logs"), "tensorboard": False, "text_every": 0, "image_every": 0},
    }  # fmt: skip
    for dotted, value in over.items():
        *path, key = dotted.split("__")
        node = t
        for part in path:
            node = node[part]
        node[key] = value
    terms = [TermConfig("fill")]
    ensemble = RewardEnsemble(RewardConfig(step1=terms, step2=terms), rewards={"fill": Fill()})
    return HiGRPOTrainer(TrainConfig.from_dict(t), ensemble=ensemble)


def test_quantized_rollout_samples_from_8bit_weights_and_restores_the_model(small_pair):
    from ar3d.core.engine import SamplingConfig
    from ar3d.core.quantize import QuantLinear, dequantize_weight
    from ar3d.trainer.loss import completion_logprobs, pack
    from ar3d.trainer.rollout_weights import QuantizedRollout, _effective

    from lora_policy import lora_policy  # tests/ is on sys.path

    policy, model = lora_policy(small_pair, ["q_proj", "o_proj", "up_proj", "down_proj"])
    layer0 = model.get_base_model().model.language_model.layers[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sampling = SamplingConfig(1.0, 1.0, 0, 6)
    rollout = QuantizedRollout(model, "int8")
    with torch.no_grad(), rollout() as n:
        assert n > 0
        assert isinstance(layer0.self_attn.o_proj, QuantLinear) and isinstance(layer0.mlp.ar3d_gate_up, QuantLinear)
        assert type(model.get_base_model().lm_head) is QuantLinear
        fused = layer0.mlp.ar3d_gate_up.weight
        out = policy.generate(["a box", "a mug"], 2, True, sampling, seed=5)
        rows = [s.steps[1] for s in out.samples]
        eight_bit, _ = completion_logprobs(model, pack(rows, policy.pad_id), policy.constraint(sampling), 1.0)
    # the LoRA layers are back, the training weights bit for bit
    assert type(layer0.self_attn.o_proj).__name__ == "Linear" and hasattr(layer0.self_attn.o_proj, "lora_A")
    assert not hasattr(layer0.mlp, "ar3d_gate_up")
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(before[k], after[k]) for k in before)
    # the engine's log-probs are those of the 8-bit weights (the importance weights' denominator) ...
    for b, r in enumerate(rows):
        assert torch.allclose(eight_bit[b, : len(r.completion_ids)], torch.tensor(r.sample_logprobs), atol=1e-4)
    # ... which differ from the training weights' a little, not a lot
    with torch.no_grad():
        trained, _ = completion_logprobs(model, pack(rows, policy.pad_id), policy.constraint(sampling), 1.0)
    gap = (trained - eight_bit).abs()[pack(rows, policy.pad_id).loss_mask]
    assert 0 < gap.mean() < 0.05, gap.mean()
    # an update to the adapter reaches the next rollout, in the same buffers (a captured CUDA graph stays valid)
    up = layer0.mlp.up_proj
    with torch.no_grad():
        up.lora_B["default"].weight.add_(0.5)
    with torch.no_grad(), rollout():
        assert layer0.mlp.ar3d_gate_up.weight.data_ptr() == fused.data_ptr()
        q = layer0.mlp.ar3d_gate_up
        w_up = dequantize_weight(q.weight, q.weight_scale)[q.split_sizes[0]:]
    expected, _ = _effective(up)
    step = expected.abs().amax(dim=1, keepdim=True) / 127  # int8: error ≤ half a step per row
    assert torch.all((w_up - expected).abs() <= step / 2 + 1e-6)
    assert not torch.allclose(w_up, _effective(layer0.mlp.gate_proj)[0], atol=1e-3)  # rows are up's, not gate's


def test_truncated_importance_weights_in_the_loss():
    from ar3d.trainer.loss import LossConfig, policy_loss

    cfg = LossConfig(beta=0.0)
    logp = torch.tensor([[-1.0, -2.0, -0.5]], requires_grad=True)
    old = torch.tensor([[-1.0, -2.0, -0.5]])
    behavior = torch.tensor([[-1.5, -1.0, -0.5]])  # ratios π_old/π_8bit: e^0.5, e^-1, 1
    mask = torch.tensor([[True, True, True]])
    A = torch.tensor([1.0])
    loss, stats = policy_loss(logp, old, None, A, mask, cfg, behavior_logp=behavior, tis_cap=1.5)
    w = torch.tensor([1.5, float(np.exp(-1.0)), 1.0])  # e^0.5 = 1.65 capped at 1.5
    assert torch.isclose(loss, -(w * 1.0).sum() / 3)
    loss.backward()
    assert torch.allclose(logp.grad, -w[None] / 3)  # weights are detached: they scale the gradient
    assert stats["tis_capped_frac"] == pytest.approx(1 / 3)
    assert stats["rollout_logp_gap"] == pytest.approx(1.5 / 3)
    plain, _ = policy_loss(logp, old, None, A, mask, cfg)
    assert not torch.isclose(plain, loss)


def test_trainer_with_int8_rollouts_trains_the_bf16_weights(tmp_path, small_pair, prompts_file, monkeypatch):
    """Two Hi-GRPO steps with LoRA and int8 rollouts. The GPU check is patched (the one test
    double here: the Triton kernel cannot run on this CPU; `QuantLinear`'s dequantized path does)."""
    import ar3d.core.quantize as quantize

    monkeypatch.setattr(quantize, "check_precision", lambda precision, device: None)
    trainer = _trainer(tmp_path, small_pair, prompts_file, rollout__precision="int8")
    named = dict(trainer.accelerator.unwrap_model(trainer.model).named_parameters())
    before = {k: v.detach().clone() for k, v in named.items()}
    history = trainer.train()
    assert len(history) == 2
    for h in history:
        assert 0.5 < h["loss/step1_tis_weight_mean"] <= 2.0 and h["loss/step2_rollout_logp_gap"] > 0
    changed = {k for k, v in named.items() if not torch.equal(before[k], v.detach())}
    assert changed and all("lora_" in k for k in changed)  # the base stays frozen, nothing 8-bit leaks in
    assert not any(type(m).__name__ == "QuantLinear" for m in trainer.model.modules())


def test_8bit_rollouts_refused_where_they_cannot_run(tmp_path, small_pair, prompts_file, monkeypatch):
    import ar3d.core.quantize as quantize
    from ar3d.trainer.config import TrainConfig
    from ar3d.trainer.trainer import TrainingError

    with pytest.raises(TrainingError, match="rollout.precision.*needs a CUDA GPU"):
        _trainer(tmp_path, small_pair, prompts_file, rollout__precision="fp8")
    # transformers' generate reports no sampling log-probs: refused at start, not after a rollout
    monkeypatch.setattr(quantize, "check_precision", lambda precision, device: None)  # as if on a GPU
    monkeypatch.setenv("AR3D_ENGINE", "transformers")
    with pytest.raises(TrainingError, match="needs the graph engine"):
        _trainer(tmp_path, small_pair, prompts_file, rollout__precision="int8")
    with pytest.raises(ValueError, match="precision"):
        TrainConfig.from_dict({"rollout": {"precision": "fp4"}, "data": {"path": "x.txt"}})
    with pytest.raises(ValueError, match="tis_cap"):
        TrainConfig.from_dict({"algorithm": {"tis_cap": 0.5}, "data": {"path": "x.txt"}})


def test_old_logprobs_from_the_first_update_equal_a_separate_pass(tmp_path, small_pair, prompts_file):
    """Without dropout the first update's forward is π_old: the run matches the one that computes
    π_old in its own pass (that pass is skipped); with LoRA dropout the pass stays."""
    a = _trainer(tmp_path / "a", small_pair, prompts_file)
    b = _trainer(tmp_path / "b", small_pair, prompts_file)
    assert a._old_from_update
    b._old_from_update = False  # the separate pass, as before
    calls = []
    import ar3d.trainer.trainer as trainer_module

    real = trainer_module.completion_logprobs

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    trainer_module.completion_logprobs = counting
    try:
        a.train()
        n_a = len(calls)
        b.train()
        n_b = len(calls) - n_a
    finally:
        trainer_module.completion_logprobs = real
    assert n_a < n_b  # one forward fewer per chunk and step
    wa = dict(a.accelerator.unwrap_model(a.model).named_parameters())
    wb = dict(b.accelerator.unwrap_model(b.model).named_parameters())
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    assert [h["loss/step1_ratio_mean"] for h in a.history] == pytest.approx([h["loss/step1_ratio_mean"] for h in b.history], abs=1e-5)
    c = _trainer(tmp_path / "c", small_pair, prompts_file, model__lora__dropout=0.05)
    assert not c._old_from_update


def test_rows_per_forward_gives_the_same_update(tmp_path, small_pair, prompts_file):
    """Two rows per forward/backward instead of all four of a step: the same gradient, so the
    same weights up to float summation order (Adam's first steps move a weight by about lr·sign(g)
    whatever |g|, so allow lr·1e-3)."""
    a = _trainer(tmp_path / "a", small_pair, prompts_file)
    b = _trainer(tmp_path / "b", small_pair, prompts_file, train__rows_per_forward=2)
    wa = dict(a.accelerator.unwrap_model(a.model).named_parameters())
    wb = dict(b.accelerator.unwrap_model(b.model).named_parameters())
    start = {k: v.detach().clone() for k, v in wa.items()}
    a.train()
    b.train()
    assert max((wa[k] - start[k]).abs().max() for k in wa) > 1e-3  # it trained
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)
    assert a.history[-1]["loss/step1_tokens"] == b.history[-1]["loss/step1_tokens"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the 8-bit kernels need a CUDA GPU")
def test_fp8_rollouts_on_a_gpu(tmp_path, small_pair, prompts_file):
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("fp8 needs Hopper or Ada")
    trainer = _trainer(tmp_path, small_pair, prompts_file, rollout__precision="fp8", model__dtype="bf16")
    history = trainer.train()
    assert all(0.5 < h["loss/step1_tis_weight_mean"] <= 2.0 for h in history)
    assert trainer.policy.engine.last_timings.get("cuda_graph")


def test_mesh_workers_give_the_meshes_of_the_trainer_process():
    """Grids meshed in worker processes equal those meshed in place; an empty grid keeps its reason."""
    from ar3d.core.mesh import MeshConfig
    from ar3d.trainer.rollout import MeshWorkers

    rng = np.random.default_rng(0)
    grids = []
    for i in range(3):
        g = np.zeros((32, 32, 32), bool)
        g[4 + i : 20, 6:26, 3 : 28 - i] = True
        g &= rng.random(g.shape) > 0.2
        grids.append(g)
    grids.append(np.zeros((32, 32, 32), bool))
    here, pool = MeshWorkers(1), MeshWorkers(2)
    try:
        a, b = here.map(grids, MeshConfig()), pool.map(grids, MeshConfig())
        assert pool._pool is not None  # really in other processes
        executor = pool._pool
        for pid in list(executor._processes):  # Ctrl-C reaches the group: the trainer decides, workers stay
            os.kill(pid, signal.SIGINT)
        time.sleep(0.5)
        again = pool.map(grids, MeshConfig())
        assert pool._pool is executor and pool.workers == 2 and len(again) == len(grids)
    finally:
        pool.close()
    for (ma, ea), (mb, eb) in zip(a[:3], b[:3]):
        assert ea is eb is None and np.array_equal(ma.vertices, mb.vertices) and np.array_equal(ma.faces, mb.faces)
    assert a[3][0] is None and b[3][0] is None and a[3][1] == b[3][1] and "empty" in a[3][1].lower()
