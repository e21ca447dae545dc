"""Training infrastructure: config, prompt data, checkpoints, graceful stop, metrics (CPU, fast)."""

from __future__ import annotations

import json
import os
import random
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from ar3d.trainer.checkpoint import CheckpointManager, GracefulStop, latest, list_checkpoints
from ar3d.trainer.config import ConfigError, add_cli_arguments, config_from_args, load_config
from ar3d.trainer.data import PromptFileError, PromptSource, read_prompts
from ar3d.trainer.metrics import MetricsLogger, read_scalars, render_grid

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "trainer" / "configs"


# --- config -----------------------------------------------------------------------------------
def test_shipped_configs_load_and_paper_is_the_default():
    paper = load_config(CONFIGS / "paper.toml", ["data.path=captions.txt"])
    default = load_config(None, ["data.path=captions.txt"])
    pd, dd = paper.to_dict(), default.to_dict()
    assert {k: v for k, v in pd.items() if k != "rewards"} == {k: v for k, v in dd.items() if k != "rewards"}
    assert paper.reward_config() == default.reward_config()
    assert (paper.optim.lr, paper.algorithm.beta, paper.rollout.group_size) == (1e-6, 0.01, 8)
    assert (paper.train.steps, paper.train.grad_accum, paper.rollout.prompts_per_step) == (1200, 2, 1)
    assert (paper.algorithm.eps_low, paper.algorithm.eps_high, paper.reward_config().lam) == (0.2, 0.28, 1.0)
    demo = load_config(CONFIGS / "demo.toml")
    assert demo.rewards["preset"] == "demo" and demo.reward_config().step1[0].reward == "procedural.family"
    assert demo.render.to_render_config().resolution == 256
    assert demo.rollout.sampling.to_sampling_config().max_plan_tokens == 256


def test_config_toml_and_yaml_with_typed_nested_overrides(tmp_path):
    (tmp_path / "a.toml").write_text('[data]\npath = "p.txt"\n[rollout]\ngroup_size = 4\n[rollout.sampling]\ntop_k = 5\n')
    (tmp_path / "a.yaml").write_text("data:\n  path: p.txt\nrollout:\n  group_size: 4\n  sampling:\n    top_k: 5\n")
    for name in ("a.toml", "a.yaml"):
        cfg = load_config(tmp_path / name, [
            "rollout.sampling.temperature=0.9", "optim.lr=3e-6", "rewards.lam=0.5", "rewards.preset=geometry",
            "model.lora.enabled=true", "model.lora.target_modules=['q_proj', 'v_proj']", "optim.betas=[0.9, 0.95]",
            "render.workers=2", "model.policy=some/model", "model.policy=none",
        ])  # fmt: skip
        assert cfg.rollout.group_size == 4 and cfg.rollout.sampling.top_k == 5
        assert cfg.rollout.sampling.temperature == 0.9 and isinstance(cfg.optim.lr, float) and cfg.optim.lr == 3e-6
        assert cfg.reward_config().lam == 0.5 and cfg.reward_config().step1[0].reward.startswith("geometry.")
        assert cfg.model.lora.enabled is True and cfg.model.lora.target_modules == ["q_proj", "v_proj"]
        assert cfg.optim.betas == (0.9, 0.95) and cfg.render.workers == 2 and cfg.model.policy is None
    # an int where a float is expected is accepted; a string where an int is expected is not
    assert load_config(None, ["data.path=x.txt", "optim.lr=1"]).optim.lr == 1.0
    with pytest.raises(ConfigError, match=r"'train.steps' must be an integer, got 'many'"):
        load_config(None, ["data.path=x.txt", "train.steps=many"])


def test_config_unknown_key_names_key_and_valid_ones(tmp_path):
    (tmp_path / "bad.toml").write_text('[rollout]\ngroupsize = 4\n')
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "bad.toml", ["data.path=x.txt"])
    msg = str(e.value)
    assert "'rollout.groupsize'" in msg and "did you mean 'group_size'" in msg
    assert "group_size, prompts_per_step, two_step, sampling" in msg and "bad.toml" in msg
    with pytest.raises(ConfigError, match=r"unknown config key 'optimizer'.*valid keys in the top level.*optim"):
        load_config(None, ["optimizer.lr=1"])
    with pytest.raises(ConfigError, match="not section.key=value"):
        load_config(None, ["lr"])
    with pytest.raises(ConfigError, match="unknown keys in \\[rewards\\]"):
        load_config(None, ["data.path=x.txt", "rewards.lamda=0.5"])


def test_config_validation_lists_every_problem():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["rollout.group_size=1", "algorithm.eps_low=1.5", "algorithm.aggregation=mean",
                           "optim.scheduler=step", "rollout.sampling.top_p=0"])  # fmt: skip
    msg = str(e.value)
    for needle in ("data.path: is required", "rollout.group_size: must be >= 2", "algorithm.eps_low: must be in (0, 1)",
                   "algorithm.aggregation: must be one of ['token', 'sequence']", "optim.scheduler",
                   "rollout.sampling.top_p"):  # fmt: skip
        assert needle in msg, (needle, msg)
    with pytest.raises(ConfigError, match="render.options: unknown RenderConfig fields \\['colour'\\]"):
        load_config(None, ["data.path=x.txt", "render.options={colour = [1, 0, 0]}"])
    with pytest.raises(ConfigError, match="cannot tell the format"):
        load_config(None, ["data.path=prompts.parquet"])


def test_config_round_trip_toml_json_yaml(tmp_path):
    cfg = load_config(CONFIGS / "demo.toml", ["model.vqvae=some/vq", "render.options={workbench_aa = \"FXAA\", color = [0.5, 0.5, 0.5]}",
                                              'data.path=data/with "quotes" and ünïcode.jsonl', "optim.lr=1.5e-7"])  # fmt: skip
    for name in ("c.toml", "c.json", "c.yaml"):
        path = cfg.save(tmp_path / name)
        assert load_config(path).to_dict() == cfg.to_dict(), name
    assert "[rollout.sampling]" in (tmp_path / "c.toml").read_text()


def test_cli_helpers():
    import argparse

    parser = add_cli_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--config", str(CONFIGS / "demo.toml"), "--set", "train.steps=7", "--resume"])
    cfg = config_from_args(args)
    assert cfg.train.steps == 7 and cfg.checkpoint.resume == "auto"
    args = parser.parse_args(["--set", "data.path=x.txt", "--resume", "runs/x/step-00000010"])
    assert config_from_args(args).checkpoint.resume == "runs/x/step-00000010"
    assert config_from_args(parser.parse_args(["--set", "data.path=x.txt"])).checkpoint.resume is None


# --- data -------------------------------------------------------------------------------------
def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_prompt_files_txt_jsonl_csv(tmp_path):
    txt = read_prompts(_write(tmp_path / "p.txt", "# comment\na red chair\n\n  a blue table  \n#x\n"))
    assert [(p.prompt, p.metadata, p.index) for p in txt] == [("a red chair", {}, 0), ("a blue table", {}, 1)]
    jl = read_prompts(_write(tmp_path / "p.jsonl", '{"prompt": "a lamp", "family": "lamp"}\n\n{"caption": "a cup", "k": 1}\n'))
    assert [(p.prompt, p.metadata) for p in jl] == [("a lamp", {"family": "lamp"}), ("a cup", {"k": 1})]
    custom = read_prompts(_write(tmp_path / "q.jsonl", '{"text": "a vase"}\n'), prompt_field="text")
    assert custom[0].prompt == "a vase"
    rows = read_prompts(_write(tmp_path / "p.csv", 'id,prompt,style\n1,"a sofa, grey",modern\n2,a bed,\n'))
    assert [(p.prompt, p.metadata) for p in rows] == [("a sofa, grey", {"id": "1", "style": "modern"}), ("a bed", {"id": "2", "style": ""})]


@pytest.mark.parametrize(
    "name, text, kwargs, match",
    [
        ("b.jsonl", '{"prompt": "ok"}\n{"prompt": "ok", \n', {}, r"b\.jsonl:2: not valid JSON"),
        ("b.jsonl", '{"prompt": "ok"}\n["x"]\n', {}, r"b\.jsonl:2: a JSON list"),
        ("b.jsonl", '{"prompt": "ok"}\n\n{"name": "x"}\n', {}, r"b\.jsonl:3: no 'prompt' or 'caption' field.*data.prompt_field"),
        ("b.jsonl", '{"text": "x"}\n', {"prompt_field": "text2"}, r"b\.jsonl:1: no 'text2' field"),
        ("b.jsonl", '{"prompt": ""}\n', {}, r"b\.jsonl:1: field 'prompt' must be a non-empty string"),
        ("b.csv", "id,text\n1,x\n", {}, r"b\.csv:1: the header has no 'prompt' or 'caption' column"),
        ("b.csv", "id,prompt\n1,x\n2,y,z\n", {}, r"b\.csv:3: 3 fields, the header has 2"),
        ("b.txt", "# only comments\n\n", {}, r"holds no prompts"),
        ("missing.txt", None, {}, r"not found"),
    ],
)
def test_prompt_file_errors_name_file_and_line(tmp_path, name, text, kwargs, match):
    path = tmp_path / name
    if text is not None:
        _write(path, text)
    with pytest.raises(PromptFileError, match=match):
        read_prompts(path, **kwargs)


def test_shuffle_is_deterministic_and_covers_each_epoch():
    prompts = [f"p{i}" for i in range(10)]
    a = [x.prompt for x in PromptSource.from_items(prompts, seed=3).next_batch(25)]
    b = [x.prompt for x in PromptSource.from_items(prompts, seed=3).next_batch(25)]
    c = [x.prompt for x in PromptSource.from_items(prompts, seed=4).next_batch(25)]
    assert a == b and a != c
    assert sorted(a[:10]) == sorted(prompts) and sorted(a[10:20]) == sorted(prompts) and a[:10] != a[10:20]
    assert [x.prompt for x in PromptSource.from_items(prompts, shuffle=False).next_batch(12)] == prompts + prompts[:2]


def test_resume_continues_at_the_exact_prompt(tmp_path):
    path = _write(tmp_path / "p.txt", "\n".join(f"prompt {i}" for i in range(7)))
    whole = PromptSource(path, seed=1)
    expected = [x.prompt for x in whole.next_batch(5) + whole.next_batch(3) + whole.next_batch(4)]
    first = PromptSource(path, seed=1)
    got = [x.prompt for x in first.next_batch(5)]
    state = json.loads(json.dumps(first.state_dict()))  # survives JSON (it lives in trainer_state.json)
    resumed = PromptSource(path, seed=1)
    resumed.load_state_dict(state)
    got += [x.prompt for x in resumed.next_batch(3) + resumed.next_batch(4)]
    assert got == expected
    other = PromptSource(path, seed=2)
    with pytest.raises(PromptFileError, match="seed was 1 when it was saved, now 2"):
        other.load_state_dict(state)


def test_sharding_gives_disjoint_prompts_in_lock_step():
    prompts = [f"p{i}" for i in range(12)]
    shards = [PromptSource.from_items(prompts, seed=0, rank=r, world_size=3) for r in range(3)]
    seen = [[x.index for _ in range(2) for x in s.next_batch(2)] for s in shards]  # 2 steps of 2 prompts
    flat = [i for s in seen for i in s]
    assert len(flat) == 12 and len(set(flat)) == 12  # one epoch, each prompt exactly once
    assert len({json.dumps(s.state_dict()) for s in shards}) == 1  # same position on every process


# --- checkpoints ------------------------------------------------------------------------------
def _training_objects(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 3))
    return model, opt, sched


def _train_step(model, opt, sched):
    x = torch.randn(5, 4)  # draws from the global RNG: restoring the RNG matters
    loss = (model(x) ** 2).mean() + 0.01 * random.random() + 0.01 * float(np.random.rand())
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return loss.item()


def test_checkpoint_restore_continues_exactly(tmp_path):
    random.seed(0), np.random.seed(0)
    model, opt, sched = _training_objects()
    gen = torch.Generator().manual_seed(5)
    for _ in range(3):
        _train_step(model, opt, sched)
    mgr = CheckpointManager(tmp_path / "ckpt", keep_last=2)
    saved = mgr.save(3, model=model, optimizer=opt, scheduler=sched, data_state={"epoch": 0, "position": 3},
                     config=load_config(CONFIGS / "demo.toml"), metrics={"loss": [1.0, 0.5]}, stateful={"gen": gen},
                     extra={"note": "x"})  # fmt: skip
    assert saved.name == "step-00000003" and latest(tmp_path / "ckpt") == saved
    # the uninterrupted run
    losses = [_train_step(model, opt, sched) for _ in range(2)]
    nxt = (random.random(), float(np.random.rand()), torch.rand(3), torch.rand(2, generator=gen))
    final = [p.detach().clone() for p in model.parameters()]

    random.seed(99), np.random.seed(99), torch.manual_seed(99)  # a fresh process would start elsewhere
    model2, opt2, sched2 = _training_objects(seed=1)
    gen2 = torch.Generator().manual_seed(0)
    state = CheckpointManager(tmp_path / "ckpt").load(saved, model=model2, optimizer=opt2, scheduler=sched2, stateful={"gen": gen2})
    assert (state.step, state.data_state, state.metrics, state.extra) == (3, {"epoch": 0, "position": 3}, {"loss": [1.0, 0.5]}, {"note": "x"})
    assert state.config["rewards"]["preset"] == "demo"
    assert [_train_step(model2, opt2, sched2) for _ in range(2)] == losses
    nxt2 = (random.random(), float(np.random.rand()), torch.rand(3), torch.rand(2, generator=gen2))
    assert nxt2[:2] == nxt[:2] and torch.equal(nxt2[2], nxt[2]) and torch.equal(nxt2[3], nxt[3])
    assert all(torch.equal(a, b) for a, b in zip(final, model2.parameters()))
    assert sched2.state_dict() == sched.state_dict()


@pytest.fixture
def fresh_accelerate_state():
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)  # leave no global state to other tests


def test_checkpoint_with_accelerate_restores_model_optimizer_rng(tmp_path, fresh_accelerate_state):
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    model, opt, sched = acc.prepare(*_training_objects())
    for _ in range(2):
        _train_step(model, opt, sched)
    mgr = CheckpointManager(tmp_path, accelerator=acc)
    saved = mgr.save(2, data_state={"epoch": 0, "position": 2})
    assert (saved / "accelerate").is_dir()
    losses = [_train_step(model, opt, sched) for _ in range(2)]
    nxt = torch.rand(4)

    acc2 = Accelerator(cpu=True)
    model2, opt2, sched2 = acc2.prepare(*_training_objects(seed=1))
    torch.manual_seed(1234)
    state = CheckpointManager(tmp_path, accelerator=acc2).load(latest(tmp_path))
    assert state.step == 2 and state.data_state == {"epoch": 0, "position": 2}
    assert [_train_step(model2, opt2, sched2) for _ in range(2)] == losses
    assert torch.equal(torch.rand(4), nxt)


def test_checkpoint_atomicity_and_keep_last(tmp_path):
    model, opt, sched = _training_objects()
    mgr = CheckpointManager(tmp_path, keep_last=2)
    for step in (10, 20, 30):
        mgr.save(step, model=model, optimizer=opt, scheduler=sched)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000020", "step-00000030"]
    # a save that crashed half-way: a temp dir, and a step dir without its final state file
    (tmp_path / ".tmp-step-00000040").mkdir()
    (tmp_path / ".tmp-step-00000040" / "model.safetensors").write_bytes(b"partial")
    (tmp_path / "step-00000050").mkdir()
    assert latest(tmp_path).name == "step-00000030"
    assert mgr.resolve_resume("auto").name == "step-00000030" and mgr.resolve_resume(None) is None
    mgr.save(40, model=model)  # the next save clears the stale temp dir
    assert not (tmp_path / ".tmp-step-00000040").exists() and latest(tmp_path).name == "step-00000040"
    mgr.save(40, model=model)  # saving the same step again replaces it
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000030", "step-00000040"]
    with pytest.raises(Exception, match="not a complete checkpoint"):
        mgr.resolve_resume(tmp_path / "step-00000050")


def test_graceful_stop_sets_flag_on_sigterm_then_restores_handler():
    before = signal.getsignal(signal.SIGTERM)
    with GracefulStop(quiet=True) as stop:
        assert not stop.should_stop()
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):  # the handler runs in the main thread at the next bytecode boundary
            if stop.requested:
                break
        assert stop.should_stop() and stop.signal_name == "SIGTERM"
        assert signal.getsignal(signal.SIGTERM) == before  # a second signal gets the old behaviour
    assert signal.getsignal(signal.SIGTERM) == before


def test_export_policy_writes_a_loadable_folder(tmp_path):
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    from ar3d.core.hub import DEMO_MODEL
    from ar3d.trainer.checkpoint import export_policy

    if not (DEMO_MODEL / "config.json").is_file():
        pytest.skip("the bundled demo model is not present")
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(DEMO_MODEL, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(DEMO_MODEL)
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)  # "training"
    out = export_policy(model, tok, tmp_path / "policy", info={"step": 3})
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "vqvae.safetensors", "ar3d_export.json"} <= names
    back = Qwen2_5_VLForConditionalGeneration.from_pretrained(out, dtype=torch.float32)
    assert torch.equal(back.lm_head.weight, model.lm_head.weight)


def test_export_policy_merges_lora(tmp_path):
    peft = pytest.importorskip("peft")
    from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    from ar3d.core.hub import DEMO_MODEL
    from ar3d.trainer.checkpoint import export_policy
    from ar3d.trainer.config import LoraSection

    if not (DEMO_MODEL / "config.json").is_file():
        pytest.skip("the bundled demo model is not present")
    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(DEMO_MODEL, dtype=torch.float32)
    model = peft.get_peft_model(base, LoraSection(enabled=True, r=4).peft_config()).eval()  # eval: no dropout
    adapted = [n for n, _ in model.named_modules() if n.endswith("lora_A")]
    assert adapted and not any("visual" in n for n in adapted)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.01)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        want = model(input_ids=ids).logits
    out = export_policy(model, AutoTokenizer.from_pretrained(DEMO_MODEL), tmp_path / "policy")
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "vqvae.safetensors").is_file()
    merged = Qwen2_5_VLForConditionalGeneration.from_pretrained(out, dtype=torch.float32)
    with torch.no_grad():
        got = merged(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-4)


# --- metrics ----------------------------------------------------------------------------------
def test_metrics_logger_writes_jsonl_and_tensorboard(tmp_path):
    with MetricsLogger(tmp_path / "logs", tensorboard=True) as log:
        log.scalars({"loss": torch.tensor(0.5), "reward/mean": 1.25, "skipped": None}, step=1)
        log.scalars({"loss": float("nan")}, step=2)
        log.text("plans/0", "step 1: a box\nstep 2: a box with legs", step=1)
        grid = render_grid([np.zeros((6, 32, 32, 4), np.uint8), [np.full((32, 32, 3), 200, np.uint8)] * 6],
                           ["a red chair", "a very long caption " * 20])  # fmt: skip
        assert grid.shape == (2 * (32 + 28), 6 * 32, 3) and grid.dtype == np.uint8
        assert (grid[28:60, :32] == 255).all()  # transparent renders composite on white
        png = log.image("samples", grid, step=1)
        log.histogram("advantages", np.array([0.1, -0.2, 0.3]), step=1)
    rows = read_scalars(tmp_path / "logs")
    assert rows[0]["step"] == 1 and rows[0]["loss"] == 0.5 and rows[0]["reward/mean"] == 1.25 and "skipped" not in rows[0]
    assert rows[1]["loss"] is None
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))
    assert png.is_file() and json.loads((tmp_path / "logs" / "text.jsonl").read_text().splitlines()[0])["tag"] == "plans/0"
    assert render_grid([None, [np.zeros((16, 16, 3), np.uint8)] * 3]).shape == (32, 48, 3)  # no captions, a failed row


def test_metrics_logger_off_main_process_and_missing_wandb(tmp_path, monkeypatch):
    quiet = MetricsLogger(tmp_path / "rank1", is_main=False)
    quiet.scalars({"loss": 1.0}, step=1)
    quiet.close()
    assert not (tmp_path / "rank1").exists()
    import sys

    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb → ImportError
    with pytest.raises(Exception, match="wandb is not installed: pip install wandb, or set logging.wandb=false"):
        MetricsLogger(tmp_path / "w", tensorboard=False, wandb=True)


def test_rollout_meshes_only_when_a_reward_reads_meshes(small_pair, monkeypatch):
    """Occupancy-only rewards (the demo RL run's) skip meshing, the CPU-heavy part of a rollout."""
    from ar3d.core.engine import SamplingConfig
    from ar3d.core.pipeline import TextTo3D
    from ar3d.core.rewards import RewardConfig, RewardEnsemble
    from ar3d.core.rewards.ensemble import TermConfig
    from ar3d.trainer.rollout import RolloutRunner

    import ar3d.trainer.rollout as rollout

    pipe = TextTo3D.load(str(small_pair), device="cpu")
    calls = []
    mesh = rollout.mesh_or_reason
    monkeypatch.setattr(rollout, "mesh_or_reason", lambda grid, config: calls.append(1) or mesh(grid, config))
    sampling = SamplingConfig(max_plan_tokens=2)

    def run(terms):
        ens = RewardEnsemble(RewardConfig(step1=terms, step2=terms))
        runner = RolloutRunner(pipe, ens, sampling, group_size=2, two_step=True, mesh_workers=1)  # counted in-process
        return runner.run(["a box"], None, seed=0)

    out = run([TermConfig("geometry.fill")])
    assert not calls and all(m is None for st in out.steps for m in st.meshes)
    assert all(st.occupancy[0] is not None for st in out.steps)
    run([TermConfig("geometry.watertight")])
    assert len(calls) == 4  # 2 samples x 2 steps
