"""The policy on a tiny random Qwen2.5-VL checkpoint, loaded like a real one."""

import shutil

import huggingface_hub.constants
import numpy as np
import pytest
import torch

from ar3d.core import prompts
from ar3d.core.engine import GenerationCancelled, SamplingConfig
from ar3d.core.hub import ModelNotFoundError, resolve_policy
from ar3d.core.policy import Policy, PolicyLoadError

FAST = SamplingConfig(max_plan_tokens=6)


def test_batches_groups_and_seeds(tiny_policy):
    events = []
    a = tiny_policy.generate(["a chair", "a round table"], samples=2, seed=7, sampling=FAST, progress=events.append)
    b = tiny_policy.generate(["a chair", "a round table"], samples=2, seed=7, sampling=FAST)
    assert [s.prompt for s in a.samples] == ["a chair", "a chair", "a round table", "a round table"]
    assert [s.group_index for s in a.samples] == [0, 1, 0, 1]
    assert a.seed == 7 and a.engine == "graph" and not a.two_step
    for x, y in zip(a.samples, b.samples):  # same seed → same tokens
        assert x.steps[0].completion_ids == y.steps[0].completion_ids
    assert not np.array_equal(a.samples[0].codes, a.samples[1].codes)  # samples differ
    step = a.samples[0].steps[0]
    assert step.codes.shape == (1024,) and step.codes.dtype == np.int64
    assert len(step.reasoning_mask) == len(step.mesh_mask) == len(step.completion_ids)
    assert sum(step.mesh_mask) == 1024
    # the plan text is the decoded reasoning tokens
    start = step.completion_ids.index(tiny_policy.vocab.start_id)
    assert step.plan == tiny_policy.tokenizer.decode(step.completion_ids[:start], skip_special_tokens=True).strip()
    assert "a chair" in tiny_policy.tokenizer.decode(step.prompt_ids)
    # progress: planning first, mesh tokens rise monotonically to 1024
    assert events[0].stage == "planning" and events[-1].mesh_tokens == 1024
    counts = [e.mesh_tokens for e in events]
    assert counts == sorted(counts) and {e.stage for e in events} == {"planning", "mesh"}


def test_two_step_conditions_step2_on_the_plan(tiny_policy):
    events = []
    out = tiny_policy.generate("a tall lamp", two_step=True, seed=1, sampling=FAST, progress=events.append)
    s = out.samples[0]
    assert out.two_step and [st.step for st in s.steps] == [1, 2]
    step2_prompt = tiny_policy.tokenizer.decode(s.steps[1].prompt_ids)
    assert "High-level plan: " + (s.steps[0].plan or "(none)") in step2_prompt
    assert "a tall lamp" in step2_prompt and "<mesh" not in step2_prompt  # not the step-1 codes
    assert {(e.step, e.stage) for e in events} >= {(1, "coarse"), (2, "refined")}
    assert s.plans == [s.steps[0].plan, s.steps[1].plan]
    assert np.array_equal(s.codes, s.steps[1].codes)


def test_cancel_stops_between_tokens(tiny_policy):
    seen = []

    def stop():
        seen.append(1)
        return len(seen) >= 5

    with pytest.raises(GenerationCancelled):
        tiny_policy.generate("a mug", seed=0, sampling=FAST, should_stop=stop)
    assert len(seen) == 5  # asked once a token, and stopped at once


@pytest.mark.parametrize("bad, message", [("   ", "empty"), ("x" * 5000, "limit is 2000")])
def test_bad_prompts(tiny_policy, bad, message):
    with pytest.raises(prompts.PromptError, match=message):
        tiny_policy.generate(bad)


def test_sampling_config_is_checked():
    with pytest.raises(ValueError, match="temperature"):
        SamplingConfig(temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=0)


def test_missing_model_offline_says_what_to_download(monkeypatch, tmp_path):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(ModelNotFoundError) as e:
        resolve_policy("IvanTang/3DGen-R1")
    msg = str(e.value)
    assert "hf download IvanTang/3DGen-R1" in msg and "HF_HUB_OFFLINE=1" in msg and "--model" in msg
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_policy(tmp_path)
    monkeypatch.setenv("AR3D_MODEL", str(tmp_path / "nowhere"))
    with pytest.raises(ModelNotFoundError, match="nowhere"):
        resolve_policy(None)


def test_corrupt_checkpoint(tiny_policy_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_policy_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(PolicyLoadError, match="(?s)could not load the policy.*not truncated"):
        Policy.load(broken, device="cpu")


def test_loads_through_the_hugging_face_cache(tiny_policy_dir, tmp_path, monkeypatch):
    """A policy id found in the HF cache loads offline, exactly as a downloaded checkpoint."""
    cache = tmp_path / "hub"
    snap = cache / "models--ar3d--tiny" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_policy_dir, snap)
    (cache / "models--ar3d--tiny" / "refs").mkdir()
    (cache / "models--ar3d--tiny" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert resolve_policy("ar3d/tiny") == snap
    policy = Policy.load("ar3d/tiny", device="cpu", dtype="bfloat16")
    assert policy.model.dtype == torch.bfloat16 and policy.vocab.num_codes == 8192
