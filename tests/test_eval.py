"""`ar3d eval`: the benchmark format and bundled suite, and end-to-end runs of the command.

The end-to-end runs use the conftest's tiny policy + VQ-VAE pair (and a second random policy
for the comparison), real Workbench renders at 128² from a 4-view ring, the real reward
ensemble ("geometry"), and tiny random CLIP / FID Inception-v3 / torchvision Inception-v3 / DINOv2
models saved to files and loaded through the same code paths as the real weights (which cannot be
downloaded here).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import ar3d.core  # noqa: F401  (the torchvision shim, before open_clip/torchvision)
from ar3d.evaluation.benchmark import CATEGORIES, BenchmarkError, load_benchmark

# -- benchmark files ---------------------------------------------------------------------------


def test_bundled_suite_has_40_original_prompts_per_category():
    bench = load_benchmark()  # the default: ar3d-reason
    assert bench.name == "ar3d-reason"
    counts = bench.counts()
    assert set(counts) == set(CATEGORIES)
    assert all(n >= 40 for n in counts.values()), counts
    ids = [i.id for i in bench.items]
    prompts = [i.prompt.lower() for i in bench.items]
    assert len(set(ids)) == len(ids) and len(set(prompts)) == len(prompts)
    assert bench.warnings == []  # no unknown category, field or repeated prompt
    assert all(len(i.prompt.split()) >= 2 and i.reference is None for i in bench.items)
    quick = bench.select(["mechanical", "stylised"], limit=3)
    assert [i.category for i in quick.items] == ["mechanical"] * 3 + ["stylised"] * 3


def _write(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_benchmark_errors_name_line_and_fix(tmp_path):
    ok = {"id": "a", "prompt": "a chair", "category": "spatial"}
    cases = [
        (["# comment", "{not json"], r"b\.jsonl:2: not valid JSON"),
        ([ok, {"id": "b", "prompt": "x"}], r":2: missing field \"category\""),
        ([ok, dict(ok, prompt="another")], r":2: duplicate id 'a' \(first used on line 1\)"),
        ([{"id": "a/b", "prompt": "x", "category": "spatial"}], r"id 'a/b' may use only letters"),
        ([dict(ok, prompt="  ")], r"field \"prompt\" must be a non-empty string"),
        ([dict(ok, reference="refs/none.glb")], r"reference mesh 'refs/none.glb' not found .* relative to the benchmark file"),
        ([dict(ok, reference="refs/a.txt")], r"is not a mesh file"),
        (["[1, 2]"], r"must be a JSON object"),
        ([], r"no prompts"),
    ]
    for rows, pattern in cases:
        with pytest.raises(BenchmarkError, match=pattern):
            load_benchmark(_write(tmp_path / "b.jsonl", rows))
    with pytest.raises(BenchmarkError, match="no benchmark file"):
        load_benchmark(tmp_path / "missing.jsonl")


def test_benchmark_warnings_references_and_selection(tmp_path):
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "cup.glb").write_bytes(b"glb")
    rows = [
        {"id": "a", "prompt": "a cup", "category": "spatial", "reference": "refs/cup.glb"},
        {"id": "b", "prompt": "A  cup", "category": "toys", "colour": "red"},
        {"id": "c", "prompt": "a lamp", "category": "spatial", "metadata": {"family": "lamp"}},
    ]
    bench = load_benchmark(_write(tmp_path / "b.jsonl", rows))
    assert bench.items[0].reference == (tmp_path / "refs" / "cup.glb").resolve()
    assert bench.items[1].prompt == "A cup" and bench.items[2].metadata == {"family": "lamp"}
    text = "\n".join(bench.warnings)
    assert "b.jsonl:2: unknown category 'toys'" in text
    assert "prompt repeats line 1" in text and "unknown field(s) colour ignored" in text
    assert [i.id for i in bench.select(limit=1).items] == ["a", "b"]
    assert [i.id for i in bench.select(["spatial"]).items] == ["a", "c"]
    with pytest.raises(BenchmarkError, match="no prompts in category 'biological'; this benchmark has spatial, toys"):
        bench.select(["biological"])


# -- end to end ----------------------------------------------------------------------------------

def _tiny_extractor_files(d: Path, tiny_clip, inception, fid_inception_state) -> dict[str, Path]:
    """Tiny random CLIP (open_clip config + checkpoint), FID and torchvision Inception-v3 and DINOv2 weights."""
    from transformers import Dinov2Config, Dinov2Model

    cfg, clip = tiny_clip
    torch.save(clip.state_dict(), d / "clip.pt")
    torch.save(inception.state_dict(), d / "inception_tv.pth")
    torch.save(fid_inception_state, d / "fid_inception.pth")
    torch.manual_seed(0)
    dino = Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                    image_size=56, patch_size=14))  # fmt: skip
    dino.save_pretrained(d / "dino")
    return {"clip_model": cfg, "clip": d / "clip.pt", "inception": d / "fid_inception.pth", "inception_tv": d / "inception_tv.pth",
            "dino": d / "dino"}  # fmt: skip


def _benchmark(d: Path) -> Path:
    """Two categories selected (+ one left out by --categories), two prompts each (--limit 2);
    two references, one of them a corrupt file; one prompt too long for the policy."""
    import trimesh

    from ar3d.core.mesh import export_mesh

    export_mesh(trimesh.creation.box((0.5, 0.3, 0.8)), d / "refs" / "box.glb")
    export_mesh(trimesh.creation.cylinder(0.3, 0.9), d / "refs" / "cylinder.glb")
    (d / "refs" / "broken.glb").write_bytes(b"not a glb file")
    rows = [
        {"id": "s1", "prompt": "a tall box", "category": "spatial", "reference": "refs/box.glb"},
        {"id": "s2", "prompt": "a box on a box", "category": "spatial", "reference": "refs/broken.glb"},
        {"id": "s3", "prompt": "left out by --limit", "category": "spatial"},
        {"id": "m1", "prompt": "a lever", "category": "mechanical", "reference": "refs/cylinder.glb"},
        {"id": "m2", "prompt": "x" * 2100, "category": "mechanical"},  # the policy refuses it: a failure
        {"id": "b1", "prompt": "left out by --categories", "category": "biological"},
    ]
    return _write(d / "bench.jsonl", rows)


class _GenerateCounter:
    """Counts the prompts TextTo3D.generate is asked for (wraps the real method)."""

    def __init__(self):
        from ar3d.core.pipeline import TextTo3D

        self.real = TextTo3D.generate
        self.prompts: list[str] = []
        counter = self

        def generate(pipe, prompts, *args, **kwargs):
            counter.prompts += [prompts] if isinstance(prompts, str) else list(prompts)
            return counter.real(pipe, prompts, *args, **kwargs)

        self.wrapper = generate


@pytest.fixture(scope="module")
def e2e(small_pair, calibrated_inception, fid_inception_state, tiny_clip, tmp_path_factory):
    """One `ar3d eval --compare-model` run of two tiny policies; tests below inspect and rerun it."""
    pytest.importorskip("bpy", reason="ar3d eval renders with bpy (the render extra)")
    from ar3d.cli import main
    from ar3d.core.factory import build_tokenizer, create_random_policy
    from ar3d.core.pipeline import TextTo3D

    d = tmp_path_factory.mktemp("eval")
    second = d / "second_policy"
    shutil.copytree(small_pair, second)
    for f in second.glob("*.safetensors"):
        if f.name != "vqvae.safetensors":
            f.unlink()
    create_random_policy(second, tokenizer=build_tokenizer(num_codes=64), seed=1)
    files = _tiny_extractor_files(d, tiny_clip, calibrated_inception, fid_inception_state)
    bench = _benchmark(d)
    out = d / "cmp"
    argv = [
        "eval", "--benchmark", str(bench), "--categories", "spatial,mechanical", "--limit", "2",
        "--model", str(small_pair), "--label", "base", "--compare-model", str(second), "--compare-label", "other",
        "--out", str(out), "--views", "ring:4@30", "--resolution", "128", "--reward-resolution", "64",
        "--batch-size", "3", "--max-plan-tokens", "4", "--workers", "1", "--device", "cpu", "-q",
        "--clip-model", str(files["clip_model"]), "--clip-checkpoint", str(files["clip"]),
        "--inception-weights", str(files["inception"]), "--inception-tv-weights", str(files["inception_tv"]),
        "--dinov2", str(files["dino"]),
        "--feature-batch-size", "8", "--kd-subsets", "10",
    ]  # fmt: skip
    counter = _GenerateCounter()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TextTo3D, "generate", counter.wrapper)
        code = main(argv)
    return {"dir": d, "out": out, "argv": argv, "code": code, "prompts": counter.prompts, "files": files}


def test_eval_runs_generates_renders_scores_and_records_failures(e2e):
    out = e2e["out"]
    assert e2e["code"] == 1  # one prompt failed in each run
    # per model: one batch of the three good prompts, then the refused one alone (raises at once)
    assert e2e["prompts"] == ["a tall box", "a box on a box", "a lever", "x" * 2100] * 2
    for run in ("a", "b"):
        r = out / run
        assert sorted(p.name for p in (r / "samples").iterdir() if (p / "record.json").is_file()) == ["m1", "s1", "s2"]
        assert not (r / "samples" / "s3").exists() and not (r / "samples" / "b1").exists()
        errors = [json.loads(line) for line in (r / "errors.jsonl").read_text().splitlines()]
        assert {(e["id"], e["stage"]) for e in errors} == {("m2", "generate"), ("s2", "reference")}
        assert any("2000" in e["error"] for e in errors if e["id"] == "m2")
        rec = json.loads((r / "samples" / "s1" / "record.json").read_text())
        from ar3d.evaluation.generation import batch_seed

        assert rec["seed"] == batch_seed(0, ["s1", "s2", "m1"]) and rec["batch"] == ["s1", "s2", "m1"]
        (s,) = rec["samples"]
        assert len(list((r / "samples" / "s1" / s["views"]).glob("view_*.png"))) == 4
        assert 0.0 <= s["clip_score"] <= 100.0 and len(s["clip_per_view"]) == 4
        assert s["reward"]["total"] is not None and "geometry.silhouette" in s["reward"]["terms"]
        assert s["geometry"]["faces"] > 0 and isinstance(s["geometry"]["watertight"], bool)
        assert rec["features"] == ["clip", "dinov2", "inception", "inception_tv"]


def test_clip_score_and_kd_fd_recompute_from_the_saved_files(e2e):
    from ar3d.evaluation.features import CLIPFeatures
    from ar3d.evaluation.metrics import clip_score, frechet_distance, kernel_distance
    from ar3d.evaluation.files import load_views

    r, files = e2e["out"] / "a", e2e["files"]
    rec = json.loads((r / "samples" / "m1" / "record.json").read_text())
    clip = CLIPFeatures.load(str(files["clip_model"]), str(files["clip"]), device="cpu")
    views = load_views(r / "samples" / "m1" / "sample_0")
    expected, _ = clip_score(clip.image_features(views), clip.text_features(["a lever"])[0])
    assert rec["samples"][0]["clip_score"] == pytest.approx(expected, abs=1e-3)

    metrics = json.loads((r / "metrics.json").read_text())
    # every KD/FD names the features it came from: extractor, weights file and its sha256
    from ar3d.core.hub import file_sha256

    for name, extractor in (("inception", "fid-inception-v3"), ("inception_tv", "torchvision-inception-v3")):
        for entry in (metrics["kd"][name]["all"], metrics["fd"][name]["spatial"]):
            assert entry["extractor"] == {"extractor": extractor, "weights": files[name].name,
                                          "sha256": file_sha256(files[name]), "reference_weights": False}  # fmt: skip
    assert metrics["features"]["inception"]["sha256"] == file_sha256(files["inception"])
    assert metrics["kd"]["dinov2"]["all"]["extractor"]["sha256"] == file_sha256(files["dino"] / "model.safetensors")
    # references: s1 (box) and m1 (cylinder); s2's reference file is broken and left out
    for name in ("inception", "inception_tv", "dinov2"):
        gen = np.concatenate([np.load(r / "samples" / i / "features.npz")[f"{name}_0"] for i in ("s1", "m1")])
        ref = np.concatenate([np.load(r / "references" / i / "features.npz")[name] for i in ("s1", "m1")])
        kd = metrics["kd"][name]["all"]
        assert (kd["n_a"], kd["n_b"], kd["subset_size"]) == (8, 8, 8)
        assert kd["mean"] == pytest.approx(kernel_distance(gen, ref, 10, 1000, seed=0).mean)
        assert metrics["fd"][name]["all"]["value"] == pytest.approx(frechet_distance(gen, ref), rel=1e-6)
        assert metrics["kd"][name]["spatial"]["n_a"] == 4


def test_reports_have_tables_plots_grids_and_comparison(e2e):
    out = e2e["out"]
    md = (out / "a" / "report.md").read_text()
    for text in ("# ar3d evaluation: base", "## Per category", "spatial & structural", "mechanical affordances",
                 "CLIP ×100", "watertight %", "## KD and FD against the references", "inception", "dinov2",
                 "| extractor · sha256 |", "fid-inception-v3 · ", "torchvision-inception-v3 · ", "NOT the published weights",
                 "`m2` (generate)", "reference of `s2`", "report/best.png", "report/worst.png",
                 "report/clip_by_category.png"):  # fmt: skip
        assert text in md, text
    for png in ("best.png", "worst.png", "clip_by_category.png", "reward_by_category.png"):
        assert (out / "a" / "report" / png).stat().st_size > 1000
    page = (out / "a" / "report.html").read_text()
    assert "<table>" in page and page.count("data:image/png;base64,") >= 4 and 'src="report/' not in page
    cmp_md = (out / "comparison.md").read_text()
    for text in ("other vs base", "| metric | base | other | Δ |", "CLIP ×100", "compare_clip_bars.png",
                 "compare_clip_hist.png", "Prompts that changed most", "report/gained.png"):  # fmt: skip
        assert text in cmp_md, text
    assert (out / "report" / "compare_clip_bars.png").is_file() and (out / "comparison.html").is_file()
    summary = json.loads((out / "a" / "summary.json").read_text())
    assert summary["categories"]["all"]["done"] == 3 and summary["categories"]["mechanical"]["failed"] == 1


def test_rerun_resumes_without_generating(e2e):
    from ar3d.cli import main
    from ar3d.core.pipeline import TextTo3D

    out = e2e["out"]
    record = out / "a" / "samples" / "s1" / "record.json"
    before = record.stat().st_mtime_ns
    (out / "b" / "samples" / "m1" / "record.json").unlink()  # as if b was interrupted after generating m1
    counter = _GenerateCounter()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TextTo3D, "generate", counter.wrapper)
        code = main(e2e["argv"])
    assert code == 1  # m2 is retried and fails again
    assert counter.prompts == ["x" * 2100] * 2  # nothing else is generated
    assert record.stat().st_mtime_ns == before
    assert (out / "b" / "samples" / "m1" / "record.json").is_file()  # re-rendered and scored from its files


def test_eval_compare_command_and_mismatched_resume(e2e, tmp_path, capsys):
    from ar3d.cli import main

    out = e2e["out"]
    assert main(["eval-compare", str(out / "a"), str(out / "b"), "--out", str(tmp_path / "c"), "--labels", "A,B"]) == 0
    text = (tmp_path / "c" / "comparison.md").read_text()
    assert "# ar3d evaluation: B vs A" in text and (tmp_path / "c" / "comparison.html").is_file()
    assert main(["eval-compare", str(tmp_path), str(out / "b"), "--out", str(tmp_path / "d")]) == 2
    assert "not an evaluation folder" in capsys.readouterr().err
    argv = [a for a in e2e["argv"] if a not in ("--compare-model", "--compare-label", "other")]
    argv = [a for a in argv if "second_policy" not in a]
    argv[argv.index("--out") + 1] = str(out / "a")
    assert main(argv + ["--seed", "5"]) == 2
    err = capsys.readouterr().err
    assert "holds an evaluation with other settings (seed: 0 there, 5 now)" in err

    # other FID Inception weights: a rerun on the same folder would mix features, and is refused
    from ar3d.core.hub import file_sha256

    other_weights = tmp_path / "other_fid.pth"
    state = torch.load(e2e["files"]["inception"], weights_only=True)
    state["fc.bias"] = state["fc.bias"] + 1.0
    torch.save(state, other_weights)
    argv[argv.index("--inception-weights") + 1] = str(other_weights)
    before = (out / "a" / "eval.json").read_text()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "holds features from other extractors or weights (inception: fid-inception-v3 (fid_inception.pth" in err
    assert file_sha256(other_weights)[:12] in err and (out / "a" / "eval.json").read_text() == before

    # eval-compare of runs whose features differ: refused, or with the flag written without those KD/FD
    b2 = tmp_path / "b2"
    shutil.copytree(out / "b", b2)
    settings = json.loads((b2 / "eval.json").read_text())
    settings["features"]["inception"]["sha256"] = file_sha256(other_weights)
    (b2 / "eval.json").write_text(json.dumps(settings))
    assert main(["eval-compare", str(out / "a"), str(b2), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "computed their metrics with different features (inception: fid-inception-v3" in err
    assert not (tmp_path / "e" / "comparison.md").exists()
    assert main(["eval-compare", str(out / "a"), str(b2), "--out", str(tmp_path / "e"), "--allow-feature-mismatch"]) == 0
    text = (tmp_path / "e" / "comparison.md").read_text()
    assert "**Features differ** between the runs (inception:" in text
    assert "| inception |" not in text and "| inception_tv |" in text and "not available: inception: the runs used different features" in text


def test_kd_fd_without_references_or_features_say_why(tmp_path):
    from ar3d.evaluation.features import FeatureSet
    from ar3d.evaluation.config import EvalConfig
    from ar3d.evaluation.runner import EvalRunner

    bench = load_benchmark().select(["stylised"], limit=2)
    runner = EvalRunner(EvalConfig(out=tmp_path), features=FeatureSet(unavailable={"inception": "no weights here"}))
    m = runner.dataset_metrics(bench)
    assert "no reference meshes" in m["kd"]["inception"]["reason"] and "no reference meshes" in m["fd"]["dinov2"]["reason"]
    (tmp_path / "cup.glb").write_bytes(b"x")
    _write(tmp_path / "b.jsonl", [{"id": "a", "prompt": "a cup", "category": "spatial", "reference": "cup.glb"}])
    m = runner.dataset_metrics(load_benchmark(tmp_path / "b.jsonl"))
    assert m["kd"]["inception"]["reason"] == "inception features unavailable: no weights here"
