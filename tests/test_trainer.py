"""Hi-GRPO training end to end on CPU: a tiny Qwen2.5-VL policy with a small random VQ-VAE,
Workbench renders through the real worker pool, real geometry rewards; resume; it learns."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ar3d.core.rewards import RewardConfig, RewardEnsemble, SampleScore, TermConfig



@pytest.fixture(scope="module")
def demo_vq_pair(tmp_path_factory):
    """A tiny random policy over 1024 codes with the demo model's trained VQ-VAE: its codes
    decode to structure (some nearly empty, some full), so a grid reward carries signal. A
    random VQ-VAE decodes every code sequence to ~50% noise and nothing could be learned."""
    import shutil

    from ar3d.core.factory import build_tokenizer, create_random_policy
    from ar3d.core.hub import DEMO_MODEL

    path = tmp_path_factory.mktemp("demo_vq_pair")
    create_random_policy(path, tokenizer=build_tokenizer(num_codes=1024), seed=0)
    for name in ("vqvae.safetensors", "vqvae_config.json"):
        shutil.copy(DEMO_MODEL / name, path / name)
    return path


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("data") / "prompts.jsonl"
    rows = [{"prompt": t, "family": "box"} for t in ("a box", "a chair", "a tall tower", "a mug", "a lamp", "a car")]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _config(tmp, pair, prompts, **over):
    from ar3d.trainer.config import TrainConfig

    cfg = TrainConfig.from_dict({
        "model": {"policy": str(pair), "dtype": "fp32", "gradient_checkpointing": False},
        "data": {"path": str(prompts), "seed": 0},
        "rollout": {"group_size": 4, "prompts_per_step": 1, "two_step": True,
                    "sampling": {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_plan_tokens": 4}},
        "render": {"engine": "workbench", "resolution": 48, "workers": 1},
        "rewards": {"preset": "geometry", "missing": "skip_term"},
        "algorithm": {"updates_per_batch": 2, "beta": 0.01, "max_extra_batches": 1},
        "optim": {"lr": 1e-3, "warmup_steps": 0, "scheduler": "constant"},
        "train": {"steps": 2, "grad_accum": 1, "seed": 0},
        "checkpoint": {"dir": str(tmp / "ckpt"), "every": 1, "keep_last": 5, "export_dir": str(tmp / "policy")},
        "logging": {"dir": str(tmp / "logs"), "text_every": 1, "image_every": 1, "image_samples": 2},
    }, validate=False)  # fmt: skip
    for dotted, value in over.items():
        section, key = dotted.split("__")
        setattr(getattr(cfg, section), key, value)
    return cfg.validate()


def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_hi_grpo_end_to_end_with_renders_and_geometry_rewards(tmp_path, small_pair, prompts_file):
    from ar3d.core.policy import Policy
    from ar3d.trainer.checkpoint import latest
    from ar3d.trainer.metrics import read_scalars
    from ar3d.trainer.trainer import HiGRPOTrainer

    cfg = _config(tmp_path, small_pair, prompts_file)
    trainer = HiGRPOTrainer(cfg)
    assert trainer.pool is not None  # geometry.silhouette reads the views: renders are on
    before = _params(trainer.policy.model)
    history = trainer.train()
    after = _params(trainer.policy.model)
    assert len(history) == 2
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "no parameter changed"
    rows = read_scalars(tmp_path / "logs")
    keys = set().union(*rows)
    for key in ("reward/r_high_tilde", "reward/r_low", "reward/step1/geometry.silhouette", "reward/step2/geometry.fill",
                "advantage/std", "loss/step1_kl", "loss/step2_clip_frac_high", "loss/step1_entropy",
                "rollout/dropped_group_fraction", "time/rollout_s", "time/update_s", "time/generate_s"):  # fmt: skip
        assert key in keys, key
    assert any(r.get("reward/step1/geometry.silhouette", 0) > 0.5 for r in rows)  # real renders were scored
    assert list((tmp_path / "logs").rglob("*.png")), "no grid image of sample renders"
    assert latest(tmp_path / "ckpt").name.endswith("2")
    exported = Policy.load(tmp_path / "policy", device="cpu")  # the exported policy loads like a checkpoint
    out = exported.generate("a box", sampling=cfg.rollout.sampling.to_sampling_config(), seed=1)
    assert len(out.samples[0].codes) == 1024


class FewerVoxels:
    """Toy objective for the learning test: the emptier the decoded grid, the better."""

    name, sub_scores, value_range, needs = "fewer_voxels", 1, (-1.0, 0.0), frozenset({"occupancy"})

    def score(self, batch):
        return [SampleScore(-float(np.asarray(g).mean())) for g in batch.occupancy]


def _toy_trainer(tmp, pair, prompts, steps, **over):
    from ar3d.trainer.trainer import HiGRPOTrainer

    cfg = _config(tmp, pair, prompts, train__steps=steps, **over)
    cfg.rollout.two_step = False
    config = RewardConfig(step1=[], step2=[TermConfig("fewer_voxels")])
    return HiGRPOTrainer(cfg, ensemble=RewardEnsemble(config, rewards={"fewer_voxels": FewerVoxels()}))


def test_resume_gives_identical_parameters(tmp_path, small_pair, prompts_file):
    straight = _toy_trainer(tmp_path / "a", small_pair, prompts_file, 4)
    straight.train()
    first = _toy_trainer(tmp_path / "b", small_pair, prompts_file, 2)
    first.train()
    second = _toy_trainer(tmp_path / "b", small_pair, prompts_file, 4, checkpoint__resume="auto")
    assert second.step == 2
    second.train()
    a, b = _params(straight.policy.model), _params(second.policy.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    ra = [h["reward/r"] for h in straight.history]
    rb = [h["reward/r"] for h in second.history]
    assert ra == rb


def test_it_learns_a_toy_objective(tmp_path, demo_vq_pair, prompts_file):
    """8 steps of GRPO on "fewer occupied voxels": the occupied fraction falls clearly (measured:
    1.2% → 0.6% over 10 steps; the run is seeded, so this is not luck)."""
    trainer = _toy_trainer(tmp_path, demo_vq_pair, prompts_file, 8, optim__lr=1e-2, algorithm__beta=0.0,
                           rollout__group_size=8)  # fmt: skip
    history = trainer.train()
    occupied = [-h["reward/r"] for h in history]
    first, last = np.mean(occupied[:3]), np.mean(occupied[-3:])
    assert last < 0.75 * first, f"occupied fraction {first:.4f} → {last:.4f}: {np.round(occupied, 4)}"


def test_lora_trains_only_the_adapter_and_exports_a_merged_policy(tmp_path, small_pair, prompts_file):
    """LoRA (peft) with β > 0: the reference is the base with the adapter switched off."""
    from ar3d.core.policy import Policy

    trainer = _toy_trainer(tmp_path, small_pair, prompts_file, 1)
    assert trainer.ref_model is not None  # full fine-tune keeps a frozen copy for the KL
    from ar3d.trainer.trainer import HiGRPOTrainer

    cfg = _config(tmp_path / "lora", small_pair, prompts_file, train__steps=2)
    cfg.model.lora.enabled = True
    cfg.model.lora.r = 4
    cfg.rollout.two_step = False
    config = RewardConfig(step1=[], step2=[TermConfig("fewer_voxels")])
    lora = HiGRPOTrainer(cfg, ensemble=RewardEnsemble(config, rewards={"fewer_voxels": FewerVoxels()}))
    assert lora.ref_model is None
    named = dict(lora.accelerator.unwrap_model(lora.model).named_parameters())
    before = {k: v.detach().clone() for k, v in named.items()}
    history = lora.train()
    changed = {k for k, v in named.items() if not torch.equal(before[k], v.detach())}
    assert changed and all("lora_" in k for k in changed)
    assert all(np.isfinite(h["loss/step1_kl"]) for h in history)
    exported = Policy.load(tmp_path / "lora" / "policy", device="cpu")
    assert not any("lora_" in k for k in exported.model.state_dict())


def test_two_processes_with_ddp(tmp_path, small_pair, prompts_file):
    """`ar3d train` under torchrun with 2 CPU processes (gloo DDP through accelerate): prompts
    are sharded, gradients synchronised, one checkpoint holds every rank's state."""
    import os
    import subprocess
    import sys

    cfg = _config(tmp_path, small_pair, prompts_file, train__steps=1)
    cfg.rollout.two_step = False
    cfg.rewards = {"preset": "geometry", "step1": [], "step2": [{"reward": "geometry.fill"}]}
    path = cfg.save(tmp_path / "ddp.toml")
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    import socket

    with socket.socket() as sock:  # a free port for the rendezvous (torchrun's 0 does not mean "any")
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(port)]  # fmt: skip
    done = subprocess.run([*torchrun, "-m", "ar3d.cli", "train", "--config", str(path)], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = tmp_path / "ckpt" / "step-00000001"
    assert (ckpt / "state_rollout_seed_rank0.pt").is_file() and (ckpt / "state_rollout_seed_rank1.pt").is_file()
    assert (ckpt / "accelerate" / "random_states_1.pkl").is_file()
    assert done.stdout.count("step 1/1") == 1  # only the main process logs


def test_signal_stops_after_the_step_with_checkpoint_and_export(tmp_path, small_pair, prompts_file, monkeypatch):
    """SIGTERM mid-run (a farm's time limit): the step finishes, a checkpoint and a loadable
    exported policy exist, and the run stops there instead of going on to `train.steps`."""
    import os
    import signal

    from ar3d.core.policy import Policy
    from ar3d.trainer.checkpoint import latest
    from ar3d.trainer.trainer import HiGRPOTrainer

    cfg = _config(tmp_path, small_pair, prompts_file, train__steps=5, checkpoint__every=0, rollout__group_size=2)
    cfg.rewards = {"preset": "geometry", "step1": [{"reward": "geometry.fill"}], "step2": [{"reward": "geometry.fill"}]}
    trainer = HiGRPOTrainer(cfg)
    step = trainer.train_step

    def step_then_signal():
        out = step()
        os.kill(os.getpid(), signal.SIGTERM)  # arrives during step 1, handled after it
        return out

    monkeypatch.setattr(trainer, "train_step", step_then_signal)
    history = trainer.train()
    assert len(history) == 1
    assert latest(tmp_path / "ckpt").name.endswith("1")
    assert Policy.load(tmp_path / "policy", device="cpu").vocab.num_codes == 64


def test_trainer_rolls_out_in_its_own_precision_whatever_ar3d_precision_says(tmp_path, small_pair, prompts_file, monkeypatch):
    """AR3D_PRECISION picks 8-bit weights for inference commands; the trainer must ignore it (its
    log-probs are those of the weights it trains). On this CPU machine an 8-bit load would refuse."""
    monkeypatch.setenv("AR3D_PRECISION", "fp8")
    trainer = _toy_trainer(tmp_path, small_pair, prompts_file, 1)
    assert trainer.policy.precision == "default"
    assert not any(type(m).__name__ == "QuantLinear" for m in trainer.policy.model.modules())
