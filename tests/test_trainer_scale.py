"""Hi-GRPO at scale (issue #16): sharded training with 2 gloo processes, dynamic sampling that
refills across processes, LoRA rollouts on merged weights, and the resume/launch fixes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ar3d.core.rewards import RewardConfig, RewardEnsemble, SampleScore, TermConfig

HERE = Path(__file__).resolve().parent
ACCELERATE_DIR = HERE.parent / "trainer" / "configs" / "accelerate"


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("data") / "prompts.txt"
    p.write_text("a box\na chair\na tall tower\na mug\na lamp\na car\n")
    return p


def _table(tmp, pair, prompts, **over) -> dict:
    t = {
        "model": {"policy": str(pair), "dtype": "fp32", "gradient_checkpointing": False},
        "data": {"path": str(prompts), "seed": 0},
        "rollout": {"group_size": 4, "prompts_per_step": 1, "two_step": False,
                    "sampling": {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_plan_tokens": 4}},
        "rewards": {"preset": "geometry", "step1": [], "step2": [{"reward": "geometry.fill"}]},
        "algorithm": {"updates_per_batch": 2, "beta": 0.01, "max_extra_batches": 1},
        "optim": {"lr": 1e-3, "warmup_steps": 0, "scheduler": "constant"},
        "train": {"steps": 2, "grad_accum": 1, "seed": 0},
        "checkpoint": {"dir": str(tmp / "ckpt"), "every": 100, "keep_last": 5, "export_final": False},
        "logging": {"dir": str(tmp / "logs"), "tensorboard": False, "text_every": 0, "image_every": 0},
    }  # fmt: skip
    for dotted, value in over.items():
        section, key = dotted.split("__")
        t[section][key] = value
    return t


class Fill:
    """The occupied fraction of the decoded grid (varies between samples of a random policy)."""

    name, sub_scores, value_range, needs = "fill", 1, (0.0, 1.0), frozenset({"occupancy"})

    def score(self, batch):
        return [SampleScore(float(np.asarray(g).mean())) for g in batch.occupancy]


class Flat:
    """The same value for every sample; far from Fill's ≈ 0.5, so which term scored shows."""

    name, sub_scores, value_range, needs = "flat", 1, (0.0, 1.0), frozenset({"occupancy"})

    def score(self, batch):
        return [SampleScore(0.125) for _ in batch.occupancy]


def _trainer(table, reward=None, log=None):
    from ar3d.trainer.config import TrainConfig
    from ar3d.trainer.trainer import HiGRPOTrainer

    reward = reward or Fill()
    terms = [TermConfig(reward.name)]
    ensemble = RewardEnsemble(RewardConfig(step1=terms, step2=terms), rewards={reward.name: reward})
    return HiGRPOTrainer(TrainConfig.from_dict(table), ensemble=ensemble, log=log)


def _weights(trainer) -> dict[str, torch.Tensor]:
    model = trainer.accelerator.unwrap_model(trainer.model)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --- the Fix list --------------------------------------------------------------------------------
def test_checkpoint_every_zero_saves_only_at_the_end(tmp_path, small_pair, prompts_file):
    from ar3d.trainer.checkpoint import list_checkpoints

    history = _trainer(_table(tmp_path, small_pair, prompts_file, checkpoint__every=0)).train()
    assert len(history) == 2  # today: ZeroDivisionError after the first step
    assert [p.name for p in list_checkpoints(tmp_path / "ckpt")] == ["step-00000002"]


@pytest.mark.timeout(1800)  # 6 CPU rollouts of 1,026 tokens: slow only on a crowded machine
def test_lora_resume_is_bit_exact_whatever_the_checkpoint_frequency(tmp_path, small_pair, prompts_file):
    """LoRA with dropout: 2 steps saving every step = 2 steps saving only at the end = 1 step +
    resume + 1, bit for bit. The old/reference log-probs used to run in whatever mode the last
    update or save left (an update: dropout on; a save: off; a fresh or resumed trainer: on), so a
    save in the middle of a run changed its next step and no resume matched it."""
    lora = {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.2}

    def table(sub, steps, every=100):
        t = _table(tmp_path / sub, small_pair, prompts_file, train__steps=steps, checkpoint__every=every)
        t["model"]["lora"] = lora
        return t

    saving = _trainer(table("a", 2, every=1))  # saves after step 1, then goes on
    saving.train()
    at_end = _trainer(table("b", 2))
    at_end.train()
    _trainer(table("c", 1)).train()
    t = table("c", 2)
    t["checkpoint"]["resume"] = "auto"
    resumed = _trainer(t)
    assert resumed.step == 1
    resumed.train()
    a, b, c = _weights(saving), _weights(at_end), _weights(resumed)
    assert [k for k in a if "lora_" in k]
    assert all(torch.equal(a[k], b[k]) for k in a), max(float((a[k] - b[k]).abs().max()) for k in a)
    assert all(torch.equal(a[k], c[k]) for k in a), max(float((a[k] - c[k]).abs().max()) for k in a)


@pytest.fixture
def fresh_accelerate_state():
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_world_size_mismatch_stops_with_a_clear_error(tmp_path, small_pair, prompts_file, monkeypatch,
                                                      fresh_accelerate_state):  # fmt: skip
    """What ddp.yaml does on a machine without CUDA: the launcher starts N processes (WORLD_SIZE=N)
    and each one's accelerate falls back to a one-process run (seen with 2 processes here). Here:
    a one-process accelerate state, then the launcher's WORLD_SIZE=2."""
    from accelerate import Accelerator

    from ar3d.trainer.distributed import LaunchError

    assert Accelerator(cpu=True).num_processes == 1  # what each of those processes set up
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(LaunchError, match=r"started 2 processes.*set up 1.*ACCELERATE_USE_CPU=1"):
        _trainer(_table(tmp_path, small_pair, prompts_file))
    assert not (tmp_path / "ckpt").exists()


@pytest.mark.parametrize("name, damage", [("model.safetensors", "cut"), ("random_states_0.pkl", "cut"),
                                          ("random_states_0.pkl", "garbled")])  # fmt: skip
def test_damaged_checkpoint_files_name_the_file_and_the_previous_step(tmp_path, fresh_accelerate_state, name, damage):
    """Each file on its own: before the fix a cut model file gave safetensors' raw error, and a cut
    RNG state was skipped by accelerate with a log line (the run went on with fresh RNG). Garbled
    at its recorded size, the RNG state gets past the size check and must fail where it is read."""
    from accelerate import Accelerator

    from ar3d.trainer.checkpoint import CheckpointError, CheckpointManager

    acc = Accelerator(cpu=True)
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 64)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, opt = acc.prepare(model, opt)
    mgr = CheckpointManager(tmp_path, accelerator=acc)
    mgr.save(1)
    last = mgr.save(2)
    f = last / "accelerate" / name
    good = f.read_bytes()
    f.write_bytes(good[: len(good) // 2] if damage == "cut" else bytes(len(good)))
    with pytest.raises(CheckpointError, match=rf"{name}.*truncated.*--resume .*step-00000001"):
        mgr.load(last)
    f.write_bytes(good)
    mgr.load(last)  # intact again


def test_resume_says_when_there_is_no_checkpoint(tmp_path, small_pair, prompts_file):
    logs: list[str] = []
    t = _table(tmp_path, small_pair, prompts_file, train__steps=1)
    t["checkpoint"]["resume"] = "auto"
    trainer = _trainer(t, log=logs.append)
    assert trainer.step == 0 and any("no complete checkpoint" in m and "step 0" in m for m in logs), logs


@pytest.mark.timeout(1200)
def test_resume_refuses_changed_settings(tmp_path, small_pair, prompts_file):
    from ar3d.trainer.checkpoint import CheckpointError

    logs: list[str] = []
    t = _table(tmp_path, small_pair, prompts_file, train__steps=1)
    _trainer(t).train()
    t["checkpoint"]["resume"] = "auto"
    t["train"]["steps"] = 2  # more steps: not a change of the experiment
    t["optim"]["lr"] = 5e-4
    t["rollout"]["group_size"] = 3
    with pytest.raises(CheckpointError) as err:
        _trainer(t)
    assert "optim.lr: 0.001 → 0.0005" in str(err.value) and "rollout.group_size: 4 → 3" in str(err.value)
    assert "train.steps" not in str(err.value) and "--allow-config-change" in str(err.value)
    t["checkpoint"]["allow_config_change"] = True
    assert _trainer(t, log=logs.append).step == 1
    assert any("optim.lr" in m for m in logs)
    t["optim"]["lr"], t["rollout"]["group_size"], t["checkpoint"]["allow_config_change"] = 1e-3, 4, False
    assert _trainer(t).step == 1  # the saved settings again: resumes without the flag


def test_cli_allow_config_change_flag():
    import argparse

    from ar3d.trainer.config import add_cli_arguments, config_from_args

    parser = add_cli_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--set", "data.path=p.txt", "--resume", "--allow-config-change"])
    cfg = config_from_args(args)
    assert cfg.checkpoint.resume == "auto" and cfg.checkpoint.allow_config_change


def test_one_step_grpo_is_scored_with_step_two_terms(small_pair):
    from ar3d.core.engine import SamplingConfig
    from ar3d.core.pipeline import TextTo3D
    from ar3d.trainer.config import TrainConfig, ConfigError
    from ar3d.trainer.rollout import RolloutRunner

    pipeline = TextTo3D.load(str(small_pair), device="cpu")
    ensemble = RewardEnsemble(RewardConfig(step1=[TermConfig("flat")], step2=[TermConfig("fill")]),
                              rewards={"flat": Flat(), "fill": Fill()})  # fmt: skip
    runner = RolloutRunner(pipeline, ensemble, SamplingConfig(1.0, 1.0, 0, 4), group_size=3, two_step=False)
    rollout = runner.run(["a box"], None, seed=0)
    fill = [float(np.asarray(g).mean()) for g in rollout.steps[0].occupancy]
    assert np.allclose(rollout.rewards[0][0], fill) and np.ptp(fill) > 0
    with pytest.raises(ValueError, match="step2 is empty"):
        RolloutRunner(pipeline, RewardEnsemble(RewardConfig(step1=[TermConfig("fill")], step2=[]),
                                               rewards={"fill": Fill()}),
                      SamplingConfig(), 2, two_step=False)  # fmt: skip
    with pytest.raises(ConfigError, match="rewards.step2: is empty"):
        TrainConfig.from_dict({"data": {"path": "p.txt"}, "rollout": {"two_step": False},
                               "rewards": {"preset": "geometry", "step2": []}})  # fmt: skip


# --- dynamic sampling ----------------------------------------------------------------------------
def test_a_step_without_usable_groups_is_skipped_and_logged(tmp_path, small_pair, prompts_file):
    logs: list[str] = []
    trainer = _trainer(_table(tmp_path, small_pair, prompts_file, train__steps=1), reward=Flat(), log=logs.append)
    before = _weights(trainer)
    history = trainer.train()
    assert history[0]["train/skipped_step"] == 1.0 and history[0]["rollout/batches"] == 2  # 1 + max_extra_batches
    assert any("skipped" in m for m in logs)
    after = _weights(trainer)
    assert all(torch.equal(before[k], after[k]) for k in before)  # not even Adam's step or the KL moved them
    assert not trainer.optimizer.state_dict()["state"]


# --- LoRA rollouts on merged weights ---------------------------------------------------------------
def test_lora_rollouts_on_merged_weights_match_and_restore_exactly(small_pair):
    from lora_policy import lora_policy  # tests/ is on sys.path

    from ar3d.core.engine import SamplingConfig
    from ar3d.trainer.lora_merge import MergedLora
    from ar3d.trainer.loss import completion_logprobs, pack

    policy, peft_model = lora_policy(small_pair, ["q_proj", "v_proj", "up_proj"])
    sampling = SamplingConfig(1.0, 1.0, 0, 6)
    before = {k: v.clone() for k, v in peft_model.state_dict().items()}
    plain = policy.generate(["a box", "a mug"], 3, True, sampling, seed=5)
    merged = MergedLora(peft_model)
    assert len(merged.layers()) == 3 * len(policy.model.model.language_model.layers)
    with torch.no_grad(), merged() as n:
        assert n > 0 and not merged.layers()  # while swapped in, peft runs them as merged layers
        fast = policy.generate(["a box", "a mug"], 3, True, sampling, seed=5)
    assert [s.steps[k].completion_ids for s in fast.samples for k in (0, 1)] == \
           [s.steps[k].completion_ids for s in plain.samples for k in (0, 1)]  # fmt: skip
    after = peft_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the training weights, bit for bit
    assert len(merged.layers()) > 0  # unmerged again
    constraint = policy.constraint(sampling)
    packed = pack([s.steps[0] for s in plain.samples], policy.pad_id)
    with torch.no_grad():
        lp_a, _ = completion_logprobs(peft_model, packed, constraint, 1.0)
        with merged():
            pass
        lp_b, _ = completion_logprobs(peft_model, packed, constraint, 1.0)
    assert torch.equal(lp_a, lp_b)


# --- several processes (gloo) ------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(cmd: list[str], spec: dict, tmp: Path) -> subprocess.CompletedProcess:
    (tmp / "spec.json").write_text(json.dumps(spec))
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    done = subprocess.run([*cmd, str(HERE / "trainer_jobs.py"), str(tmp / "spec.json")], env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


@pytest.mark.timeout(1800)
def test_two_processes_refill_dynamic_sampling(tmp_path, small_pair, prompts_file):
    """DDP, 2 processes: rank 1's second rollout batch is flat (a saturated judge). Both agree to
    draw another batch, so rank 1 still trains on a full batch. Before, rank 1 trained on nothing
    and skipped a collective that rank 0 entered: the run hung."""
    table = _table(tmp_path, small_pair, prompts_file, train__steps=2)
    spec = {"config": table, "runs": [{"steps": 2, "out": str(tmp_path / "w.pt")}], "flat_on_rank": 1, "flat_calls": [1]}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                "--master_port", str(_free_port())]  # fmt: skip
    _launch(torchrun, spec, tmp_path)
    history = json.loads((tmp_path / "w.pt.rank1.json").read_text())  # means over both processes
    assert [h["rollout/batches"] for h in history] == [1.0, 1.5]  # rank 1 drew a second batch in step 2
    assert [h["rollout/groups"] for h in history] == [1.0, 1.0]  # every process trained on a full batch
    assert history[1]["rollout/dropped_group_fraction"] == pytest.approx(0.25)


def _merge(rollouts):
    """One rollout of the groups of several (what one process sees for the same global batch)."""
    from ar3d.trainer.rollout import Rollout, StepData

    first = rollouts[0]
    steps = [StepData(*[sum((getattr(r.steps[k], f) for r in rollouts), []) for f in
                        ("outputs", "occupancy", "meshes", "views", "errors")])
             for k in range(len(first.steps))]  # fmt: skip
    rewards = [np.concatenate([r.rewards[k] for r in rollouts]) for k in range(len(first.rewards))]
    return Rollout(sum((r.prompts for r in rollouts), []), sum((r.metadata for r in rollouts), []), first.group_size,
                   sum((r.samples for r in rollouts), []), steps, rewards, first.scores)  # fmt: skip


def _assert_fsdp(setup: dict) -> None:
    """A launch that fell back to DDP (accelerate turns FSDP on CPUs into MULTI_CPU) must fail."""
    assert setup["distributed_type"] == "FSDP" and not setup["ddp"], setup
    assert setup["fsdp1"] or setup["fsdp2"], setup
    assert setup["plugin_sharding_strategy"] == setup["model_sharding_strategy"] == "FULL_SHARD", setup
    assert setup["fsdp_units"] > 1, setup  # the decoder layers are their own units (TRANSFORMER_BASED_WRAP)
    assert setup["local_numel"] < 0.6 * setup["full_numel"], setup  # each rank holds about half


@pytest.mark.timeout(2400)
def test_fsdp_two_processes_resume_and_match_one_process(tmp_path, small_pair, prompts_file):
    """FSDP (fsdp_cpu.yaml, gloo, 2 processes), full-parameter Hi-GRPO: 3 steps with rollouts on
    gathered weights; 1 step + resume + 2 steps gives the same weights bit for bit; and one process
    training on the same global batch (each step's rollouts of both processes, replayed as its
    two micro-batches) ends with the same weights within float tolerance. Each process records its
    setup: a launch that silently fell back to DDP fails here."""
    from ar3d.core.policy import Policy

    table = _table(tmp_path, small_pair, prompts_file, train__steps=3, optim__lr=1e-4)
    table["rollout"]["two_step"] = True
    table["algorithm"]["dynamic_sampling"] = False
    table["optim"]["grad_clip"] = 0.5
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    spec = {"config": table, "runs": [
        {"steps": 3, "ckpt": a, "out": f"{a}.pt", "record": True, "export": f"{a}-policy"},
        {"steps": 1, "ckpt": b, "out": f"{b}1.pt"},
        {"steps": 3, "ckpt": b, "out": f"{b}3.pt", "resume": True},
    ]}  # fmt: skip
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_DIR / "fsdp_cpu.yaml"),
              "--main_process_port", str(_free_port())]  # fmt: skip
    _launch(launch, spec, tmp_path)
    for out in (f"{a}.pt", f"{b}1.pt", f"{b}3.pt"):  # every trainer on both ranks really sharded
        for rank in (0, 1):
            _assert_fsdp(json.loads(Path(f"{out}.setup{rank}.json").read_text()))
    straight, resumed = torch.load(f"{a}.pt"), torch.load(f"{b}3.pt")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    saved = sorted(q.name for q in Path(b).glob("step-*/accelerate/*"))
    assert any(n.startswith("pytorch_model_fsdp_0") for n in saved), saved  # the policy's shards
    assert not any(n.startswith("pytorch_model_fsdp_1") for n in saved), saved  # not the frozen reference's
    exported = Policy.load(f"{a}-policy", device="cpu", dtype=torch.float32).model.state_dict()  # gathered shards
    assert all(torch.equal(straight[k], exported[k]) for k in straight)
    history = json.loads(Path(f"{a}.pt.rank0.json").read_text())
    assert len(history) == 3 and all(h["train/skipped_step"] == 0 for h in history)

    # one process, grad_accum 2, the same rollouts
    per_rank = [torch.load(f"{a}.pt.rollouts{r}.pt", weights_only=False) for r in (0, 1)]
    one = dict(table, train={**table["train"], "grad_accum": 2},
               checkpoint={**table["checkpoint"], "dir": str(tmp_path / "one")})  # fmt: skip
    trainer = _trainer(one)
    start = _weights(trainer)
    replay = iter([_merge([per_rank[0][i], per_rank[1][i]]) for i in range(3)])
    trainer.runner.run = lambda *args, **kwargs: next(replay)
    trainer.train()
    single = _weights(trainer)
    moved = max(float((single[k] - start[k]).abs().max()) for k in single)
    diff = max(float((single[k].float() - straight[k]).abs().max()) for k in single)
    assert moved > 1e-4 and diff < 1e-3 * moved, (moved, diff)
