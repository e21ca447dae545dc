"""Evaluation metrics against hand-computed values, and the feature extractors with tiny random
models (the real CLIP ViT-L-14, Inception-v3 and DINOv2 weights cannot be downloaded here; the
tiny ones go through the same loading and preprocessing code)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ar3d.core  # noqa: F401  (the torchvision shim, before open_clip/torchvision)
from ar3d.core.hub import ModelNotFoundError
from ar3d.evaluation import metrics
from ar3d.evaluation.features import (
    FID_INCEPTION_FILE,
    TV_INCEPTION_FILE,
    CLIPFeatures,
    DINOv2Features,
    FeatureError,
    FeatureSet,
    FIDInceptionFeatures,
    TorchvisionInceptionFeatures,
    build_torchvision_inception,
    feature_mismatches,
)
from ar3d.core.hub import file_sha256
from ar3d.evaluation.metrics import clip_score, frechet_distance, kernel_distance, mean_std, mmd2_unbiased

# -- CLIP score ----------------------------------------------------------------------------------


def test_clip_score_is_clamped_mean_over_views_times_100():
    views = np.array([[2.0, 0.0], [0.0, 1.0], [-3.0, 0.0], [1.0, 1.0]])  # unnormalised on purpose
    score, per_view = clip_score(views, np.array([5.0, 0.0]))
    assert per_view == pytest.approx([100.0, 0.0, 0.0, 100 / math.sqrt(2)])  # -100 clamped to 0
    assert score == pytest.approx((100.0 + 100 / math.sqrt(2)) / 4)
    with pytest.raises(ValueError, match="dims"):
        clip_score(views, np.ones(3))


# -- KD ------------------------------------------------------------------------------------------


def test_kd_matches_a_hand_computed_case():
    # d = 1, k(x, y) = (x·y + 1)³. X = {0, 1}: k(0,1) = 1. Y = {2, 3}: k(2,3) = 7³ = 343.
    # Cross terms: k(0,2) = 1, k(0,3) = 1, k(1,2) = 27, k(1,3) = 64 → 93.
    # MMD²_u = 2·1/(2·1) + 2·343/(2·1) − 2·93/4 = 1 + 343 − 46.5 = 297.5
    x, y = np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]])
    kd = kernel_distance(x, y, subsets=5, subset_size=1000)
    assert kd.mean == pytest.approx(297.5)
    assert kd.std == pytest.approx(0.0)  # subsets of the whole set are permutations of it
    assert (kd.subset_size, kd.subsets, kd.n_a, kd.n_b) == (2, 5, 2, 2)
    k = metrics.polynomial_kernel
    assert mmd2_unbiased(k(x, x), k(y, y), k(x, y)) == pytest.approx(297.5)


def test_kd_identical_sets_near_zero_shifted_sets_positive():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 16))
    same = kernel_distance(a, a.copy(), subsets=20, subset_size=100, seed=1)
    shifted = kernel_distance(a, a + 0.5, subsets=20, subset_size=100, seed=1)
    assert shifted.mean > 0.5
    assert abs(same.mean) < 0.1 * shifted.mean  # ~0; unbiased, so it can be slightly negative
    # With the whole set on both sides, K_xx = K_yy = K_xy = K and
    # MMD²_u = 2(S − D)/(m(m−1)) − 2S/m² = 2(S/m − D)/(m(m−1)), S = ΣK, D = trace K:
    # slightly negative, shrinking like 1/m.
    full = kernel_distance(a, a.copy(), subsets=3, subset_size=1000)
    k = metrics.polynomial_kernel(a, a)
    m = len(a)
    assert full.subset_size == m
    assert full.mean == pytest.approx(2 * (k.sum() / m - np.trace(k)) / (m * (m - 1)))
    assert -0.1 * shifted.mean < full.mean < 0


def test_kd_subset_size_adapts_and_errors(monkeypatch):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(30, 4)) + 1
    assert kernel_distance(a, b, subsets=4).subset_size == 30
    assert kernel_distance(a, b, subsets=4, subset_size=10).subset_size == 10
    precomputed = kernel_distance(a, b, subsets=6, subset_size=10, seed=3)
    monkeypatch.setattr(metrics, "_FULL_KERNEL_MAX", 0)  # the per-subset path gives the same numbers
    per_subset = kernel_distance(a, b, subsets=6, subset_size=10, seed=3)
    assert per_subset.mean == pytest.approx(precomputed.mean) and per_subset.std == pytest.approx(precomputed.std)
    with pytest.raises(ValueError, match="at least 2"):
        kernel_distance(a[:1], b)
    with pytest.raises(ValueError, match="same d"):
        kernel_distance(a, b[:, :3])


# -- FD ------------------------------------------------------------------------------------------


def test_fd_identical_zero_and_known_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))  # correlated, full rank
    assert frechet_distance(x, x.copy()) == pytest.approx(0.0, abs=1e-8)
    delta = np.array([1.0, -2.0, 0.5, 0.0, 3.0, 0.25])
    # same covariance, mean moved by delta: FD = |delta|² exactly
    assert frechet_distance(x, x + delta) == pytest.approx(float(delta @ delta), rel=1e-9, abs=1e-8)


def test_fd_hand_computed_1d_and_scipy_cross_check():
    # x = {0, 2}: mean 1, variance 2; y = {0, 4}: mean 2, variance 8 (unbiased).
    # FD = (1 − 2)² + 2 + 8 − 2·√(2·8) = 1 + 10 − 8 = 3
    assert frechet_distance(np.array([[0.0], [2.0]]), np.array([[0.0], [4.0]])) == pytest.approx(3.0)
    from scipy import linalg

    rng = np.random.default_rng(2)
    a = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5))
    b = rng.normal(size=(150, 5)) @ rng.normal(size=(5, 5)) + 0.3
    mu1, s1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * covmean))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)


def test_fd_with_fewer_features_than_dimensions_is_exact():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(5, 32))  # fewer samples than dimensions: singular covariances
    b = rng.normal(size=(7, 32)) + 0.2
    assert frechet_distance(a, a.copy()) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, a + 0.5) == pytest.approx(32 * 0.25)
    # the sample-space (nuclear norm) route equals the covariance route without regularisation
    exact = metrics.frechet_distance_from_stats(*metrics.feature_statistics(a), *metrics.feature_statistics(b), eps=0.0)
    assert frechet_distance(a, b) == pytest.approx(exact, rel=1e-7)
    # from statistics with the default eps: the root succeeds, so no regularisation either
    from_stats = metrics.frechet_distance_from_stats(*metrics.feature_statistics(a), *metrics.feature_statistics(b))
    assert from_stats == pytest.approx(exact, rel=1e-9)
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(a[:1], a)
    with pytest.raises(ValueError, match="same d"):
        frechet_distance(a, b[:, :4])


def test_fd_from_stats_of_singular_covariances_matches_pytorch_fid():
    """Singular covariances (fewer features than dimensions): pytorch-fid's own
    ``calculate_frechet_distance`` (``scipy.linalg.sqrtm`` of Σ₁Σ₂, eps·I only when that root is
    not finite) is the reference. Tolerance 1e-6 relative: sqrtm of a singular product is itself
    accurate to ~5e-8 here; adding eps·I to every singular pair (the old behaviour) was 2e-4 off."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, 256))
    b = rng.normal(size=(40, 256)) * 1.1 + 0.05
    stats = (*metrics.feature_statistics(a), *metrics.feature_statistics(b))
    reference = calculate_frechet_distance(*stats)
    assert metrics.frechet_distance_from_stats(*stats) == pytest.approx(reference, rel=1e-6)
    assert metrics.frechet_distance(a, b) == pytest.approx(reference, rel=1e-6)


def test_fd_from_stats_at_inception_size_equals_the_exact_sample_space_value():
    """The issue's case, 300 vs 200 features of 2,048 dims: from statistics (default eps) equals
    the exact nuclear-norm route to 1e-7 (rounding in the near-zero eigenvalues; pytorch-fid's own
    sqrtm is 6e-8 off here and takes ~2 min on 2 cores, so its reference runs at 256 dims above).
    Adding eps·I to every singular pair was 1.7e-4 off."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 2048))
    b = rng.normal(size=(200, 2048)) + 0.05
    stats = (*metrics.feature_statistics(a), *metrics.feature_statistics(b))
    assert metrics.frechet_distance_from_stats(*stats) == pytest.approx(metrics.frechet_distance(a, b), rel=1e-7)


def test_fd_from_stats_adds_eps_inside_the_root_only_when_it_fails(monkeypatch):
    """The fallback: a finite PSD pair never makes the exact root fail, so the failure is
    simulated (the first root computation returns NaN); the retry regularises the root only."""
    rng = np.random.default_rng(4)
    mu1, s1 = metrics.feature_statistics(rng.normal(size=(5, 8)))
    mu2, s2 = metrics.feature_statistics(rng.normal(size=(6, 8)))
    real = metrics._trace_sqrt_product
    calls = []

    def failing_once(x, y):
        calls.append((x.copy(), y.copy()))
        return float("nan") if len(calls) == 1 else real(x, y)

    monkeypatch.setattr(metrics, "_trace_sqrt_product", failing_once)
    eps = 1e-3
    value = metrics.frechet_distance_from_stats(mu1, s1, mu2, s2, eps=eps)
    assert len(calls) == 2 and np.allclose(calls[1][0], s1 + eps * np.eye(8)) and np.allclose(calls[1][1], s2 + eps * np.eye(8))
    diff = mu1 - mu2
    expected = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * real(s1 + eps * np.eye(8), s2 + eps * np.eye(8))
    assert value == pytest.approx(expected, rel=1e-12)
    calls.clear()
    monkeypatch.setattr(metrics, "_trace_sqrt_product", lambda x, y: float("nan"))
    with pytest.raises(ValueError, match="not finite"):
        metrics.frechet_distance_from_stats(mu1, s1, mu2, s2)


def test_mean_std_skips_missing():
    assert mean_std([1.0, None, 3.0, float("nan")]) == (2.0, 1.0, 2)
    assert mean_std([None]) == (None, None, 0)


# -- feature extractors ----------------------------------------------------------------------


def _images(n, size=48, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (n, size, size, 4), dtype=np.uint8)
    img[..., 3] = 255
    img[:, :6, :6, 3] = 0  # transparent corner: composited on white
    return img


@pytest.fixture(scope="module")
def tiny_clip_files(tiny_clip, tmp_path_factory):
    """The tiny OpenCLIP model saved as a plain open_clip checkpoint (a state dict)."""
    cfg, model = tiny_clip
    ckpt = tmp_path_factory.mktemp("clip_ckpt") / "tiny_clip.pt"
    torch.save(model.state_dict(), ckpt)
    return cfg, ckpt


def test_clip_features_load_shapes_batching_and_text(tiny_clip_files):
    cfg, ckpt = tiny_clip_files
    clip = CLIPFeatures.load(str(cfg), str(ckpt), device="cpu", batch_size=2)
    imgs = _images(5)
    f = clip.image_features(imgs)
    assert f.shape == (5, 32) and f.dtype == np.float32
    assert np.allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([clip.image_features(imgs[i : i + 1]) for i in range(5)])
    assert np.allclose(f, one_by_one, atol=1e-5)
    t = clip.text_features(["a chair", "a table", "a lamp"])
    assert t.shape == (3, 32) and np.allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    # a fully transparent render is a white image
    clear = np.zeros((1, 48, 48, 4), np.uint8)
    white = np.full((1, 48, 48, 3), 255, np.uint8)
    assert np.allclose(clip.image_features(clear), clip.image_features(white), atol=1e-6)
    score, per_view = clip_score(f[:2], t[0])
    assert 0.0 <= score <= 100.0 and len(per_view) == 2


def test_clip_missing_weights_name_the_fix(tiny_clip_files, tmp_path, monkeypatch):
    cfg, _ = tiny_clip_files
    monkeypatch.delenv("AR3D_CLIP_CHECKPOINT", raising=False)
    with pytest.raises(ModelNotFoundError, match="AR3D_CLIP_CHECKPOINT"):
        CLIPFeatures.load(str(cfg), str(tmp_path / "nope.pt"))
    with pytest.raises(ModelNotFoundError, match=r"hf download timm/vit_base_patch32_clip_224\.openai"):
        CLIPFeatures.load("ViT-B-32")  # offline, not in the cache
    with pytest.raises(FeatureError, match="not an open_clip architecture"):
        CLIPFeatures.load("no-such-net", str(tiny_clip_files[1]))
    bad = tmp_path / "bad.pt"
    torch.save({"visual.proj": torch.zeros(3)}, bad)
    with pytest.raises(FeatureError, match="do not load"):
        CLIPFeatures.load(str(cfg), str(bad))


def test_torchvision_inception_features_shapes_batching_and_loading(calibrated_inception, tmp_path, monkeypatch):
    model = calibrated_inception
    weights = tmp_path / "incep.pth"
    torch.save(model.state_dict(), weights)
    small = TorchvisionInceptionFeatures(build_torchvision_inception(model.state_dict()), image_size=128, device="cpu", batch_size=2)
    imgs = _images(3, size=64)
    f = small.image_features(imgs)  # 128² instead of 299² only to keep the test fast
    assert f.shape == (3, 2048) and np.isfinite(f).all() and small.dim == 2048
    one_by_one = np.concatenate([small.image_features(imgs[i : i + 1]) for i in range(3)])
    assert np.abs(f - one_by_one).max() <= 1e-4 * np.abs(f).max()  # float32 sums differ with the batch size
    loaded = TorchvisionInceptionFeatures.load(str(weights), device="cpu")
    assert loaded.size == (299, 299) and loaded.name == "inception_tv"
    assert loaded.identity() == {"extractor": "torchvision-inception-v3", "weights": "incep.pth",
                                 "sha256": file_sha256(weights), "reference_weights": False}  # fmt: skip
    direct = TorchvisionInceptionFeatures(build_torchvision_inception(model.state_dict()), device="cpu")
    assert np.allclose(loaded.image_features(imgs[:1]), direct.image_features(imgs[:1]), rtol=1e-4, atol=1e-4)
    # the env var, then the torch hub cache
    monkeypatch.setenv("AR3D_INCEPTION_TV_WEIGHTS", str(weights))
    assert TorchvisionInceptionFeatures.load().description.endswith("(incep.pth)")
    monkeypatch.delenv("AR3D_INCEPTION_TV_WEIGHTS")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ModelNotFoundError, match="AR3D_INCEPTION_TV_WEIGHTS"):
        TorchvisionInceptionFeatures.load()
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "torch" / "hub" / "checkpoints" / TV_INCEPTION_FILE).write_bytes(weights.read_bytes())
    assert TV_INCEPTION_FILE in TorchvisionInceptionFeatures.load().description
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, bad)
    with pytest.raises(FeatureError, match="do not load into torchvision's inception_v3"):
        TorchvisionInceptionFeatures.load(str(bad))


def _no_downloads(monkeypatch):
    """Any download attempt (torch hub, pytorch-fid) fails the test instead of reaching out."""

    def refuse(url, *args, **kwargs):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def _fid_images(n: int, size: int = 299, seed: int = 0) -> np.ndarray:
    """Random RGB images with some structure (blocks of colour): features that vary."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    for k in range(n):
        y, x = rng.integers(0, size // 2, 2)
        img[k, y : y + size // 3, x : x + size // 3] = rng.integers(0, 256, 3)
    return img


def test_fid_inception_matches_pytorch_fid_with_the_same_weights(fid_inception_state, tmp_path, monkeypatch):
    """Parity with pytorch-fid's InceptionV3 (its FIDInceptionA/C/E blocks, 2048-d pool features,
    inputs in [0, 1] scaled to [-1, 1]): the same random weights, saved under the published
    file's name in a fresh torch hub cache, load into both; nothing is downloaded. At 299² neither
    resizes. Tolerance: 1e-5 relative to the feature scale (float32 summation order)."""
    from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3

    _no_downloads(monkeypatch)
    monkeypatch.delenv("AR3D_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert FID_WEIGHTS_URL.rsplit("/", 1)[1] == FID_INCEPTION_FILE
    cached = tmp_path / "torch" / "hub" / "checkpoints" / FID_INCEPTION_FILE
    cached.parent.mkdir(parents=True)
    torch.save(fid_inception_state, cached)

    reference = InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True).eval()
    ours = FIDInceptionFeatures.load(device="cpu", batch_size=2)  # found in the torch hub cache
    assert ours.identity() == {"extractor": "fid-inception-v3", "weights": FID_INCEPTION_FILE,
                               "sha256": file_sha256(cached), "reference_weights": False}  # random, not the real file
    imgs = _fid_images(3)
    with torch.no_grad():
        expected = reference(torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255)[0].flatten(1).numpy()
    got = ours.image_features(imgs)
    scale = np.abs(expected).max()
    assert got.shape == (3, 2048) and scale > 0 and np.abs(expected - expected[:1]).max() > 1e-3 * scale
    assert np.abs(got - expected).max() <= 1e-5 * scale

    # the FID blocks matter: the same weights in torchvision's plain Inception3 give other features
    from torchvision.models.inception import Inception3

    plain = Inception3(num_classes=1008, aux_logits=False, transform_input=False, init_weights=False)
    plain.load_state_dict(fid_inception_state)
    plain.fc = torch.nn.Identity()
    with torch.no_grad():
        other = plain.eval()(ours.preprocess(imgs)).numpy()
    assert np.abs(other - expected).max() > 1e-3 * scale


def test_fid_inception_resizes_like_clean_fid(fid_inception_state):
    """Renders larger than 299² are resized as clean-fid does (PIL bicubic on float pixels, then
    clipped to [0, 255]) and scaled to [-1, 1]; agreement to 1e-4 (max 3e-3 of 255 grey levels)."""
    from PIL import Image

    from ar3d.evaluation.fid_inception import build_fid_inception

    ext = FIDInceptionFeatures(build_fid_inception(fid_inception_state), device="cpu")
    img = _fid_images(1, size=512, seed=3)
    ours = ext.preprocess(img)[0].numpy()
    channels = [np.asarray(Image.fromarray(img[0, :, :, c].astype(np.float32), mode="F").resize((299, 299), Image.BICUBIC))
                for c in range(3)]  # fmt: skip
    clean = np.clip(np.stack(channels), 0, 255) / 255.0
    assert np.abs(ours - (2 * clean - 1)).max() < 1e-4


def test_fid_inception_loading_order_and_errors(fid_inception_state, calibrated_inception, tmp_path, monkeypatch):
    _no_downloads(monkeypatch)
    weights = tmp_path / "fid.pth"
    torch.save(fid_inception_state, weights)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("AR3D_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(ModelNotFoundError, match=r"pt_inception-2015-12-05-6726825d\.pth.*AR3D_INCEPTION_WEIGHTS"):
        FIDInceptionFeatures.load()
    assert FIDInceptionFeatures.load(str(weights)).description == "FID Inception-v3 (fid.pth)"
    monkeypatch.setenv("AR3D_INCEPTION_WEIGHTS", str(weights))
    loaded = FIDInceptionFeatures.load()
    assert loaded.weights_file == weights and loaded.sha256 == file_sha256(weights) and loaded.name == "inception"
    with pytest.raises(ModelNotFoundError, match="no file at"):
        FIDInceptionFeatures.load(str(tmp_path / "missing.pth"))
    tv = tmp_path / "inception_v3_google.pth"
    torch.save(calibrated_inception.state_dict(), tv)
    with pytest.raises(FeatureError, match="torchvision's ImageNet Inception-v3.*--inception-tv-weights"):
        FIDInceptionFeatures.load(str(tv))
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(1008, 2)}, bad)
    with pytest.raises(FeatureError, match="do not load into the FID Inception"):
        FIDInceptionFeatures.load(str(bad))
    pickled = tmp_path / "pickled.pth"
    torch.save({"state_dict": object()}, pickled)  # arbitrary pickled objects are never unpickled
    with pytest.raises(FeatureError, match="weights-only"):
        FIDInceptionFeatures.load(str(pickled))


def test_feature_set_defaults_to_fid_inception_and_falls_back_to_torchvision(fid_inception_state, calibrated_inception,
                                                                             tmp_path, monkeypatch):  # fmt: skip
    for var in ("AR3D_CLIP_CHECKPOINT", "AR3D_INCEPTION_WEIGHTS", "AR3D_INCEPTION_TV_WEIGHTS", "AR3D_DINOV2"):
        monkeypatch.delenv(var, raising=False)
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.save(calibrated_inception.state_dict(), hub / TV_INCEPTION_FILE)
    fs = FeatureSet.load(None, clip_model="ViT-B-32")  # only torchvision's weights: its features, by its name
    assert fs.inception is None and fs.inception_tv is not None and fs.available() == ["inception_tv"]
    assert "AR3D_INCEPTION_WEIGHTS" in fs.unavailable["inception"]
    torch.save(fid_inception_state, hub / FID_INCEPTION_FILE)
    fs = FeatureSet.load(None, clip_model="ViT-B-32")  # the FID weights present: they are the default
    assert fs.available() == ["inception"] and "FID Inception is used" in fs.unavailable["inception_tv"]
    desc = fs.describe()["inception"]
    assert desc["extractor"] == "fid-inception-v3" and desc["sha256"] == file_sha256(hub / FID_INCEPTION_FILE)
    both = FeatureSet.load(["inception", "inception_tv"])
    assert both.available() == ["inception", "inception_tv"]
    # two runs' features: the same weights match, others are named with their sha256
    assert feature_mismatches(both.describe(), fs.describe()) == []
    other = dict(fs.describe(), inception=dict(desc, sha256="ab" * 32))
    (line,) = feature_mismatches(fs.describe(), other)
    assert line.startswith("inception: fid-inception-v3") and "abababababab" in line


@pytest.fixture(scope="module")
def tiny_dinov2():
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          image_size=56, patch_size=14)  # fmt: skip
    return Dinov2Model(config).eval()


def test_dinov2_features_are_the_cls_token(tiny_dinov2, tmp_path):
    dino = DINOv2Features(tiny_dinov2, image_size=56, device="cpu", batch_size=2)
    imgs = _images(3)
    f = dino.image_features(imgs)
    assert f.shape == (3, 32)
    with torch.inference_mode():
        cls = tiny_dinov2(pixel_values=dino.preprocess(imgs)).last_hidden_state[:, 0]
    assert np.allclose(f, cls.numpy(), atol=1e-5)
    one_by_one = np.concatenate([dino.image_features(imgs[i : i + 1]) for i in range(3)])
    assert np.allclose(f, one_by_one, atol=1e-5)
    tiny_dinov2.save_pretrained(tmp_path / "dino")
    loaded = DINOv2Features.load(str(tmp_path / "dino"), device="cpu", image_size=56)
    assert np.allclose(loaded.image_features(imgs), f, atol=1e-5)
    with pytest.raises(ModelNotFoundError, match="hf download facebook/dinov2-base"):
        DINOv2Features.load("facebook/dinov2-base")  # offline, not cached
    with pytest.raises(ModelNotFoundError, match="not a model folder"):
        DINOv2Features.load(str(tmp_path))


def test_feature_set_auto_reports_reasons_explicit_requires(tmp_path, monkeypatch):
    for var in ("AR3D_CLIP_CHECKPOINT", "AR3D_INCEPTION_WEIGHTS", "AR3D_INCEPTION_TV_WEIGHTS", "AR3D_DINOV2"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    fs = FeatureSet.load(None, clip_model="ViT-B-32")
    assert fs.available() == []
    assert "AR3D_INCEPTION_TV_WEIGHTS" in fs.unavailable["inception_tv"]
    assert "hf download" in fs.unavailable["clip"] and "AR3D_INCEPTION_WEIGHTS" in fs.unavailable["inception"]
    assert fs.describe()["dinov2"] == {"available": False, "reason": fs.unavailable["dinov2"]}
    assert "not requested" in FeatureSet.load([]).unavailable["clip"]
    with pytest.raises(ModelNotFoundError):
        FeatureSet.load(["inception"])
    with pytest.raises(FeatureError, match="unknown metric"):
        FeatureSet.load(["fid"])
