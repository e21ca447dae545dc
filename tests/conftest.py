"""Shared test set-up: offline by construction, fixtures from ../shared."""

import json
import os
from pathlib import Path

import pytest

# Any accidental Hugging Face download must fail loudly, never hang or succeed silently.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# Before any test module imports torch: OpenMP threads that spin while they wait make a loaded
# 2-core machine 10-50x slower (ar3d/core/threads.py). The tests run next to other processes.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AR3D_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"reference fixtures not found at {FIXTURES}; set AR3D_SHARED to the shared/ folder")
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory) -> Path:
    """A tiny random Qwen2.5-VL policy + tokenizer with mesh tokens, saved like a real checkpoint."""
    from ar3d.core.factory import create_random_policy

    path = tmp_path_factory.mktemp("tiny_policy")
    create_random_policy(path, seed=0)
    return path


@pytest.fixture(scope="session")
def tiny_policy(tiny_policy_dir):
    from ar3d.core.policy import Policy

    return Policy.load(tiny_policy_dir, device="cpu")


@pytest.fixture(scope="session")
def small_pair(tmp_path_factory) -> Path:
    """A tiny policy (64 mesh codes) with a small random VQ-VAE bundled in its folder: the whole
    prompt → codes → occupancy → mesh path in seconds (trainer and server tests)."""
    import torch

    from ar3d.core.factory import build_tokenizer, create_random_policy
    from ar3d.core.vqvae import VQVAE3D, VQVAEConfig, save_vqvae

    path = tmp_path_factory.mktemp("small_pair")
    create_random_policy(path, tokenizer=build_tokenizer(num_codes=64), seed=0)
    torch.manual_seed(0)
    vq = VQVAE3D(VQVAEConfig(num_embeddings=64, encoder_channels=(8, 16, 32), decoder_channels=(32, 16, 8),
                             num_res_blocks=1, num_res_blocks_middle=1))  # fmt: skip
    save_vqvae(vq, path / "vqvae.safetensors")
    return path


@pytest.fixture(scope="session")
def calibrated_inception():
    """A random torchvision Inception-v3 (evaluation tests; the real weights cannot be downloaded
    here) whose batch-norm statistics were measured on random images, so its activations stay
    in a sane range (with the init statistics they grow by orders of magnitude)."""
    import ar3d.core  # noqa: F401  (torchvision shim)
    import torch
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    model = inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=True)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batch
            m.reset_running_stats()
    aux, model.AuxLogits = model.AuxLogits, None  # the aux head needs 299² inputs; ar3d drops it
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 128, 128))
    model.AuxLogits = aux
    return model.eval()


@pytest.fixture(scope="session")
def fid_inception_state():
    """Random weights for the FID Inception-v3 in the layout of pytorch-fid's
    ``pt_inception-2015-12-05-6726825d.pth`` (1008-class fc included; the real file cannot be
    downloaded here), batch-norm statistics measured on random images as above."""
    import torch

    from ar3d.evaluation.fid_inception import build_fid_inception

    torch.manual_seed(0)
    model = build_fid_inception()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 128, 128))
    state = model.eval().state_dict()
    state["fc.weight"] = torch.randn(1008, 2048) * 0.01
    state["fc.bias"] = torch.zeros(1008)
    return state


# A tiny OpenCLIP architecture: the HPS reward and the evaluation's CLIP score load it like ViT-H-14.
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """(config file, model): the tiny architecture registered with open_clip under the file's stem,
    and one model of it with random weights (seed 0). Each test saves the weights in the format
    its loader reads."""
    import torch

    from ar3d.core.rewards.hps import _open_clip

    open_clip = _open_clip()
    cfg = tmp_path_factory.mktemp("clip") / "ar3d-tiny-clip.json"
    cfg.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(str(cfg))
    torch.manual_seed(0)
    return cfg, open_clip.create_model(cfg.stem, pretrained=None).eval()
