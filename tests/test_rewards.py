"""The reward protocol, HPS v2.1 (with a tiny random OpenCLIP: the real ViT-H-14 weights cannot
be downloaded here), the ensemble arithmetic and the procedural demo rewards."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ar3d.core.rewards import RewardBatch, RewardConfig, RewardConfigError, RewardEnsemble, SampleScore, TermConfig
from ar3d.core.rewards.base import to_rgb

# -- base --------------------------------------------------------------------------------------


def test_sample_score_missing_needs_reason_and_finite_values():
    assert SampleScore.fail("judge down").missing == "judge down"
    with pytest.raises(ValueError, match="reason"):
        SampleScore(None)
    with pytest.raises(ValueError, match="finite"):
        SampleScore(float("nan"))


def test_batch_checks_lengths_and_composites_alpha():
    with pytest.raises(ValueError, match="plans has 1 entries for 2 prompts"):
        RewardBatch(["a", "b"], plans=["x"])
    rgba = np.zeros((1, 2, 2, 4), np.uint8)
    rgba[0, 0, 0] = (10, 20, 30, 255)  # opaque pixel keeps its colour
    rgba[0, 0, 1] = (0, 0, 0, 128)  # half-covered black over white → ~127
    rgb = to_rgb(rgba)
    assert rgb[0, 0, 0].tolist() == [10, 20, 30]
    assert rgb[0, 0, 1].tolist() == [127, 127, 127]
    assert rgb[0, 1, 1].tolist() == [255, 255, 255]


# -- HPS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_hps(tiny_clip, tmp_path_factory):
    """The tiny OpenCLIP model saved the way HPS v2.1 ships (``{"state_dict": …}`` in a .pt file)."""
    cfg, model = tiny_clip
    ckpt = tmp_path_factory.mktemp("hps") / "HPS_v2.1_compressed.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in model.state_dict().items()}}, ckpt)
    return cfg, ckpt, model


def _views(seed, n=6, size=48):
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 256, (n, size, size, 4), dtype=np.uint8)
    v[..., 3] = 255
    v[:, :8, :8, 3] = 0  # some transparent background
    return v


def _official_hps_transform(model):
    """hpsv2's validation transform, built from open_clip: hpsv2 (``img_score.py``) calls its
    vendored open_clip's ``create_model_and_transforms(..., light_augmentation=True)``, i.e.
    ``image_transform(image_size, is_train=False, mean, std, resize_longest_max=True)``:
    ``ToTensor`` first, then ``ResizeMaxSize`` (bicubic on the float tensor: antialiased, no clamp)
    and normalisation. Today's open_clip applied to a tensor does the same for square images
    (its "longest" mode handles only PIL images; for a square one "squash" is the same resize)."""
    import open_clip

    pre = open_clip.get_model_preprocess_cfg(model)
    return open_clip.image_transform(pre["size"], is_train=False, mean=pre["mean"], std=pre["std"], resize_mode="squash")


def test_hps_preprocessing_is_the_official_hpsv2_transform(tiny_hps):
    """RGB renders: ours equals PIL image → ToTensor → official transform. RGBA renders: the
    official transform takes RGB only, so the reference composites on white first. Upscaled and
    downscaled views both overshoot [0, 1] at edges; the official transform keeps those values
    (the old clamp after the resize moved cosines by up to 4e-3 on renders). Tolerance 1e-5: float32."""
    import torchvision.transforms.functional as TF
    from PIL import Image

    from ar3d.core.rewards.hps import HPSConfig, HPSv21

    cfg, ckpt, model = tiny_hps
    hps = HPSv21(HPSConfig(checkpoint=str(ckpt), model=str(cfg), device="cpu"))
    official = _official_hps_transform(model)
    for size in (100, 40):  # 64² input: down- and upscaling
        views = _views(5, n=3, size=size)
        views[:, size // 3 : size // 2] = [255, 255, 255, 255]  # hard edges: bicubic overshoot
        views[:, size // 2 : size // 2 + 3, :, :3] = 0
        rgb = views[..., :3]
        expected = torch.stack([official(TF.to_tensor(Image.fromarray(v))) for v in rgb])
        assert torch.allclose(hps.preprocess(rgb), expected, atol=1e-5)
        alpha = views[..., 3:].astype(np.float32) / 255
        over_white = torch.from_numpy(views[..., :3] * alpha + 255 * (1 - alpha)).permute(0, 3, 1, 2) / 255
        expected = torch.stack([official(v) for v in over_white])
        assert torch.allclose(hps.preprocess(views), expected, atol=1e-5)
    # a wide view: hpsv2's ResizeMaxSize resizes the longest side (100 → 64, so 60 → 38) and pads
    # the other with 0, 13 rows on each side
    import open_clip

    wide = np.ascontiguousarray(_views(6, n=1, size=100)[:, :60, :, :3])
    x = TF.resize(TF.to_tensor(Image.fromarray(wide[0])), [38, 64], TF.InterpolationMode.BICUBIC)
    x = TF.pad(x, [0, 13, 0, 13], fill=0)
    pre = open_clip.get_model_preprocess_cfg(model)
    assert torch.allclose(hps.preprocess(wide), TF.normalize(x, pre["mean"], pre["std"])[None], atol=1e-5)


def test_hps_scores_are_max_cosine_over_views(tiny_hps):
    from ar3d.core.rewards.hps import HPSConfig, HPSv21

    cfg, ckpt, model = tiny_hps
    hps = HPSv21(HPSConfig(checkpoint=str(ckpt), model=str(cfg), device="cpu", batch_size=5))
    views = [_views(1), None, _views(2)]
    mixed = hps.score(RewardBatch(["a", "b"], views=[_views(1), _views(3, size=40)[..., :3]]))
    assert all(m.ok for m in mixed)
    batch = RewardBatch(["a red chair", "a mug", "a tall tower"], views=views)
    scores = hps.score(batch)
    assert scores[1].missing == "no rendered views"

    # The same numbers by hand: composite on white, the official transform, cosine, max.
    import open_clip

    tok = open_clip.get_tokenizer("ar3d-tiny-clip")
    official = _official_hps_transform(model)
    for i in (0, 2):
        rgba = torch.from_numpy(views[i]).permute(0, 3, 1, 2).float() / 255
        rgb = rgba[:, :3] * rgba[:, 3:] + (1 - rgba[:, 3:])  # over white
        with torch.no_grad():
            img = model.encode_image(torch.stack([official(v) for v in rgb]), normalize=True)
            txt = model.encode_text(tok([batch.prompts[i]]), normalize=True)[0]
        per_view = (img @ txt).numpy()
        assert scores[i].value == pytest.approx(float(per_view.max()), abs=1e-5)
        assert scores[i].details["per_view"] == pytest.approx(per_view.tolist(), abs=1e-4)
        assert -1 <= scores[i].value <= 1
    # a different prompt gives a different score for the same views (text actually used)
    other = hps.score(RewardBatch(["a banana"], views=[views[0]]))[0].value
    assert other != pytest.approx(scores[0].value, abs=1e-7)
    mean_hps = HPSv21(HPSConfig(checkpoint=str(ckpt), model=str(cfg), device="cpu", reduce="mean"))
    assert mean_hps.score(batch)[0].value == pytest.approx(float(np.mean(scores[0].details["per_view"])), abs=1e-4)


def test_hps_errors_name_the_fix(tiny_hps, tmp_path, monkeypatch):
    from ar3d.core.hub import ModelNotFoundError
    from ar3d.core.rewards.hps import HPSConfig, HPSv21

    cfg, ckpt, _ = tiny_hps
    monkeypatch.delenv("AR3D_HPS_CHECKPOINT", raising=False)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelNotFoundError, match="hf download xswu/HPSv2 HPS_v2.1_compressed.pt"):
        HPSv21(HPSConfig(model=str(cfg), device="cpu"))
    with pytest.raises(RewardConfigError, match="not an open_clip architecture"):
        HPSv21(HPSConfig(checkpoint=str(ckpt), model="no-such-clip", device="cpu"))
    wrong = tmp_path / "wrong.pt"
    torch.save({"state_dict": {"visual.proj": torch.zeros(2)}}, wrong)
    with pytest.raises(RewardConfigError, match="do not fit open_clip"):
        HPSv21(HPSConfig(checkpoint=str(wrong), model=str(cfg), device="cpu"))
    pickled = tmp_path / "pickled.pt"
    torch.save({"state_dict": {}, "obj": object()}, pickled)  # needs pickle code to load
    with pytest.raises(RewardConfigError, match="weights-only"):
        HPSv21(HPSConfig(checkpoint=str(pickled), model=str(cfg), device="cpu"))


# -- ensemble ------------------------------------------------------------------------------------


class Fixed:
    """A reward with scripted values (a test double for the arithmetic; the real rewards have
    their own tests)."""

    def __init__(self, name, values, sub_scores=1):
        self.name, self.values, self.sub_scores, self.value_range = name, values, sub_scores, (0, 100)
        self.calls = 0

    def score(self, batch):
        self.calls += 1
        return [SampleScore.fail("judge down") if v is None else SampleScore(v) for v in self.values]


def _paper_with(values1: dict, values2: dict, **overrides):
    cfg = RewardConfig(**overrides)
    rewards = {}
    for t in cfg.step1:
        rewards[t.name] = Fixed(t.name, *values1[t.name])
    for t in cfg.step2:
        rewards["2." + t.name] = Fixed(t.name, *values2[t.name])
    return cfg, rewards


class TwoStep(RewardEnsemble):
    """The paper's term names repeat across steps (hps, unified, consist): route by step."""

    def __init__(self, cfg, rewards):
        self._by_step = rewards
        super().__init__(cfg, rewards={})

    def reward(self, term):
        step2 = any(term is t for t in self.config.step2)
        return self._by_step[("2." if step2 else "") + term.name]


def test_paper_ensemble_matches_hand_computed_values():
    # two samples; sample 1's part judge is down.
    v1 = {"hps": ([0.30, 0.20], 1), "unified": ([4.0, 2.5], 1), "consist": ([1.0, 0.0], 1)}
    v2 = {
        "hps": ([0.25, 0.28], 1),
        "unified": ([12.0, 9.0], 3),  # Alignment+Coherence+Style
        "consist": ([2.4, 1.5], 3),  # colour+material+texture
        "part": ([1.6, None], 2),  # mean(exists+completeness)
    }
    cfg, rewards = _paper_with(v1, v2)
    ens = TwoStep(cfg, rewards)
    s1, s2 = RewardBatch(["a", "b"], step=1), RewardBatch(["a", "b"], step=2)
    out = ens.hi_grpo(s1, s2)
    r_high = [0.30 + 4.0 + 1.0, 0.20 + 2.5 + 0.0]
    r_low0 = 0.25 + 12.0 / 3 + 2.4 / 3 + 1.6 / 2
    assert out.r_high == pytest.approx(r_high)
    assert out.r_low[0] == pytest.approx(r_low0)
    assert out.r_low[1] is None and "part: judge down" in out.step2.missing[1]
    assert out.r_high_tilde[0] == pytest.approx(r_high[0] + 1.0 * r_low0)
    assert out.r_high_tilde[1] is None  # missing propagates, never a silent 0

    cfg, rewards = _paper_with(v1, v2, lam=0.5, missing="skip_term")
    out = TwoStep(cfg, rewards).hi_grpo(s1, s2)
    r_low1 = 0.28 + 9.0 / 3 + 1.5 / 3
    assert out.r_low[1] == pytest.approx(r_low1)
    assert out.step2.missing[1].startswith("part")  # the skipped term is still reported
    assert out.r_high_tilde[1] == pytest.approx(r_high[1] + 0.5 * r_low1)


def test_weights_and_normalisation_are_configuration():
    cfg = RewardConfig(step1=[TermConfig("a", weight=2.0, normalise=False), TermConfig("b", weight=0.5)], step2=[])
    ens = RewardEnsemble(cfg, rewards={"a": Fixed("a", [3.0], sub_scores=3), "b": Fixed("b", [3.0], sub_scores=3)})
    out = ens.score(RewardBatch(["x"], step=1))
    assert out.contributions == {"a": [6.0], "b": [0.5]}
    assert out.total == [6.5]


def test_config_from_toml_presets_and_errors(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text(
        """
[rewards]
preset = "geometry"
lam = 0.5
[[rewards.step2]]
reward = "geometry.watertight"
weight = 2.0
"""
    )
    cfg = RewardConfig.from_toml(p)
    assert cfg.lam == 0.5 and [t.reward for t in cfg.step1][:1] == ["geometry.watertight"]
    assert [(t.reward, t.weight) for t in cfg.step2] == [("geometry.watertight", 2.0)]
    assert [t.name for t in RewardConfig().step2] == ["hps", "unified", "consist", "part"]
    with pytest.raises(RewardConfigError, match="unknown keys in \\[rewards\\]: \\['lamda'\\]"):
        RewardConfig.from_dict({"lamda": 1})
    with pytest.raises(RewardConfigError, match="unknown reward preset"):
        RewardConfig.preset("best")
    with pytest.raises(RewardConfigError, match="unknown reward 'hsp'"):
        RewardEnsemble(RewardConfig(step1=[TermConfig("hsp")], step2=[]))
    with pytest.raises(RewardConfigError, match="distinct names"):
        RewardConfig(step1=[TermConfig("hps"), TermConfig("hps")])
    with pytest.raises(RewardConfigError, match="finite"):
        TermConfig("hps", weight=math.inf)


# -- the procedural demo rewards -------------------------------------------------------------------


@pytest.fixture(scope="module")
def procedural_samples():
    from ar3d.procedural.dataset import iter_samples

    return list(iter_samples(6, "train", 3, 1, families=("chair", "stairs", "mug")))


def test_procedural_rewards_judge_family_and_attributes(procedural_samples):
    from ar3d.core.rewards.procedural import AttributeMatch, FamilyMatch, save_references
    from ar3d.procedural.evaluate import build_references

    refs = build_references(per_family=4, families=("chair", "stairs", "mug"))
    fam = FamilyMatch(references=refs)
    s = procedural_samples
    meta = [{"family": x.family, "attributes": x.attributes} for x in s]
    batch = RewardBatch([x.caption for x in s], occupancy=[x.occupancy for x in s], metadata=meta)
    assert [r.value for r in fam.score(batch)] == [1.0] * len(s)  # ground truth is its own family
    wrong = [dict(m, family="stairs" if m["family"] != "stairs" else "mug") for m in meta]
    assert [r.value for r in fam.score(RewardBatch(batch.prompts, occupancy=batch.occupancy, metadata=wrong))] == [0.0] * len(s)

    attrs = AttributeMatch().score(batch)
    checked = [r for r in attrs if r.ok]
    assert checked and all(0 <= r.value <= 1 for r in checked)
    assert np.mean([r.value for r in checked]) >= 0.8  # checkers read ground truth right
    # a chair whose leg count is wrong in the prompt loses that attribute
    i = next(k for k, x in enumerate(s) if x.family == "chair" and "legs" in attrs[k].details.get("want", {}))
    lied = [dict(m) for m in meta]
    lied[i] = {"family": "chair", "attributes": dict(meta[i]["attributes"], legs=meta[i]["attributes"]["legs"] + 5)}
    again = AttributeMatch().score(RewardBatch(batch.prompts, occupancy=batch.occupancy, metadata=lied))
    assert again[i].value < attrs[i].value and again[i].details["got"]["legs"] != again[i].details["want"]["legs"]

    empty = RewardBatch(["a chair", "a chair", "a glass of water"], occupancy=[np.zeros((64,) * 3, bool), None, s[0].occupancy],
                        metadata=[meta[0], meta[0], None])  # fmt: skip
    got = fam.score(empty)
    assert got[0].value == 0.0 and got[1].missing == "no decoded occupancy grid"
    assert got[2].missing == "no procedural family in the sample's metadata or its prompt"

    save_references(refs, tmp := __import__("pathlib").Path(__import__("tempfile").mkdtemp()) / "refs.npz")
    again = FamilyMatch(references=tmp)
    assert [r.value for r in again.score(batch)] == [1.0] * len(s)


def test_procedural_rewards_read_a_plain_prompt_when_there_is_no_metadata(procedural_samples):
    """A plain prompt file (no family/attributes per row) still trains with the procedural
    rewards: the ground truth comes from the prompt, and agrees with the metadata's."""
    from ar3d.core.rewards.procedural import AttributeMatch, FamilyMatch
    from ar3d.procedural.evaluate import build_references

    s = procedural_samples
    fam = FamilyMatch(references=build_references(per_family=4, families=("chair", "stairs", "mug")))
    meta = [{"family": x.family, "attributes": x.attributes} for x in s]
    grids = [x.occupancy for x in s]
    plain = RewardBatch([x.caption for x in s], occupancy=grids)  # what a prompt-only file gives
    with_meta = RewardBatch([x.caption for x in s], occupancy=grids, metadata=meta)
    assert [r.value for r in fam.score(plain)] == [r.value for r in fam.score(with_meta)] == [1.0] * len(s)
    a, b = AttributeMatch(strict=True).score(plain), AttributeMatch(strict=True).score(with_meta)
    read = [r for r in a if r.ok]
    assert read and all(r.details["want"] == q.details["want"] and r.value == q.value for r, q in zip(a, b) if r.ok)
    # procedural.quality takes metadata only: a general prompt that happens to name a family
    # ("a tree house") is not held to that family's topology (a tree has no through-hole)
    from ar3d.core.rewards.procedural import MeshQuality

    ring = np.zeros((64,) * 3, bool)
    ring[16:48, 16:48, 24:40] = True
    ring[26:38, 26:38, 24:40] = False  # one through-hole, genus 1
    q = MeshQuality().score(RewardBatch(["a tree house"], occupancy=[ring]))[0]
    assert q.value == 1.0 and q.details["family"] is None, q.details
    # a prompt with a different count than the shape: the prompt is the ground truth
    i = next(k for k, x in enumerate(s) if x.family == "stairs")
    n = s[i].attributes["steps"]
    other = RewardBatch([f"a staircase with {n + 2} steps"], occupancy=[grids[i]])
    r = AttributeMatch(strict=True).score(other)[0]
    assert r.details["want"]["steps"] == n + 2 and r.value < 1.0


# -- the paper's ensemble end to end: real rewards, scripted judges --------------------------------


def test_paper_ensemble_end_to_end_with_scripted_judges(tiny_hps):
    """Every reward of the paper's ensemble, built from configuration, scores real arrays; the
    judges are a scripted OpenAI-compatible server (vLLM cannot run on these CPU machines)."""
    from test_judges import ScriptedJudge, answer, text_of

    from ar3d.core.rewards.judge_client import JudgeUnavailableError

    def script(body):
        text = text_of(body)
        if "Alignment Score" in text:
            return answer("Alignment Score (1-5): 4\nCoherence Score (1-5): 3.5\nStyle Score (1-5): 5")
        if "Final Score" in text:
            return answer("<think>looks right</think>\nFinal Score: 4")
        if "component:" in text:
            return answer('{"exists": 1, "completeness": 0.5}')
        if "material" in text.lower() and "texture" in text.lower():
            return answer('{"color": 1, "material": 0.5, "texture": 0.5}')
        return answer("Answer: yes")

    cfg, ckpt, _ = tiny_hps
    server = ScriptedJudge()
    server.script = script
    try:
        config = RewardConfig.from_dict({"judge": {"base_url": server.url, "timeout_s": 5, "max_retries": 0}})
        for t in (*config.step1, *config.step2):
            if t.reward == "hps":
                t.options = {"checkpoint": str(ckpt), "model": str(cfg), "device": "cpu"}
        with RewardEnsemble(config) as ens:
            ens.health_check()
            prompts, plans = ["a chair", "a stool"], ["The chair has a seat and four legs.", "A stool with a seat."]
            views = [_views(5), _views(6)]
            s1 = RewardBatch(prompts, plans=plans, views=views, step=1)
            s2 = RewardBatch(prompts, plans=["smooth wood"] * 2, views=views, step=2, step1_plans=plans)
            out = ens.hi_grpo(s1, s2)
        hps1 = [s.value for s in out.step1.terms["hps"]]
        hps2 = [s.value for s in out.step2.terms["hps"]]
        for i in range(2):
            assert out.r_high[i] == pytest.approx(hps1[i] + 4.0 + 1.0)
            assert out.r_low[i] == pytest.approx(hps2[i] + 12.5 / 3 + 2.0 / 3 + 1.5 / 2)
            assert out.r_high_tilde[i] == pytest.approx(out.r_high[i] + out.r_low[i])
        assert out.step2.terms["part"][0].details["components"] == ["seat", "legs"]

        server.models = ["Qwen2.5-VL-7B-Instruct"]  # the UnifiedReward judges are not served
        with RewardEnsemble(config) as ens, pytest.raises(JudgeUnavailableError, match="UnifiedReward"):
            ens.health_check()
    finally:
        server.close()


def test_geometry_preset_builds_real_rewards():
    """The weight-free preset needs no judge and no checkpoint: it runs anywhere."""
    from ar3d.core.mesh import occupancy_to_mesh

    grid = np.zeros((64,) * 3, bool)
    grid[20:44, 20:44, 10:50] = True
    mesh = occupancy_to_mesh(grid)
    ens = RewardEnsemble(RewardConfig.preset("geometry"))
    out = ens.score(RewardBatch(["a box"], meshes=[mesh], occupancy=[grid], step=1))
    assert out.total[0] is None and "geometry.silhouette" in out.missing[0]  # no views given
    skip = RewardEnsemble(RewardConfig.preset("geometry", missing="skip_term"))
    out = skip.score(RewardBatch(["a box"], meshes=[mesh], occupancy=[grid], step=1))
    assert out.total[0] == pytest.approx(4.0, abs=0.02)  # watertight, one part, sane fill, solid
    from ar3d.trainer.rollout import reward_needs

    assert reward_needs(ens) == {"views", "meshes", "occupancy"}
