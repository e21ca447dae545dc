"""ar3d's VQ-VAE against the public model: same checkpoint layout, same function, clear errors."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ar3d.core.vqvae import VQVAE3D, VQVAEConfig, VQVAELoadError, load_vqvae, save_vqvae

# Decode parity: our fp32 CPU logits against the reference's. Same operations in the same
# order; seen bit-identical on one CPU, but other CPUs/kernels may round differently (batch 1
# picks another conv kernel: ~2e-6 of max|logit|), so allow a small relative error.
DECODE_REL_TOL = 1e-4


@pytest.fixture(scope="module")
def vq_dir(fixtures_dir) -> Path:
    return fixtures_dir / "vqvae"


@pytest.fixture(scope="module")
def small(vq_dir) -> VQVAE3D:
    return load_vqvae(vq_dir / "small_vqvae.bin")


@pytest.fixture(scope="module")
def parity(vq_dir) -> dict[str, torch.Tensor]:
    with np.load(vq_dir / "small_parity.npz") as d:
        return {k: torch.from_numpy(d[k]) for k in d.files}


@pytest.fixture(scope="module")
def decoded(small, parity) -> torch.Tensor:
    """Whole-batch decode of the reference codes, shared so it runs once."""
    return small.decode(parity["decode_codes"])


# ----- layout ----------------------------------------------------------------------------------


def test_default_model_matches_official_state_dict(vq_dir):
    manifest = json.loads((vq_dir / "full_state_dict_manifest.json").read_text())
    with torch.device("meta"):  # 133 M parameters: shapes only, no memory, no init
        model = VQVAE3D()
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: v["shape"] for k, v in manifest["tensors"].items()}
    assert list(ours) == list(theirs)  # same names, same order
    assert ours == theirs
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]


def test_config_defaults_and_json(vq_dir):
    cfg = VQVAEConfig()
    assert (cfg.num_embeddings, cfg.embedding_dim, cfg.latent_channels, cfg.tokens) == (8192, 32, 8, 1024)
    assert cfg.encoder_channels == (32, 128, 512) and cfg.decoder_channels == (512, 128, 32)
    assert cfg.latent_resolution == 16

    small_cfg = VQVAEConfig.from_json(vq_dir / "small_vqvae_config.json")
    assert small_cfg.encoder_channels == (8, 16, 32) and small_cfg.num_embeddings == 64
    assert VQVAEConfig.from_dict(json.loads(json.dumps(small_cfg.to_dict()))) == small_cfg

    with pytest.raises(ValueError, match="unknown VQ-VAE config keys"):
        VQVAEConfig.from_dict({"num_codes": 8192})
    with pytest.raises(ValueError, match="tokens"):
        VQVAEConfig(tokens=512)


# ----- parity with the reference ---------------------------------------------------------------


def test_encode_matches_reference(small, parity):
    codes = small.encode(parity["voxels"])
    assert codes.dtype == torch.long and codes.shape == (2, 1024)
    assert torch.equal(codes, parity["encoded_codes"])


def test_decode_matches_reference(small, parity, decoded):
    logits = decoded
    ref = parity["decoded_logits"]
    assert logits.dtype == torch.float32 and logits.shape == ref.shape
    rel = (logits - ref).abs().max() / ref.abs().max()
    assert rel <= DECODE_REL_TOL, f"max|diff|/max|ref| = {rel:.2e}"
    occ = small.decode_occupancy(parity["decode_codes"])
    assert occ.dtype == torch.bool and torch.equal(occ, ref > 0)


def test_input_forms_and_batching(small, parity, decoded):
    vox, ref = parity["voxels"], parity["encoded_codes"]
    # one item at a time, bool, no channel axis: same codes as the whole uint8 batch
    assert torch.equal(small.encode(vox[:, 0].bool(), batch_size=1), ref)
    assert small.encode(vox[:0]).shape == (0, 1024)
    # An item decoded alone equals it decoded in a batch up to rounding (at batch 1 torch
    # picks another CPU conv3d kernel for small layers), with identical occupancy.
    alone, in_batch = small.decode(parity["decode_codes"][1:]), decoded[1:]
    assert (alone - in_batch).abs().max() <= 1e-5 * in_batch.abs().max()
    assert torch.equal(alone > 0, in_batch > 0)


def test_decode_threshold_travels_with_the_weights(vq_dir, small, parity, decoded, tmp_path):
    """A decoder's threshold is part of its config: saved beside the weights, used by
    decode_occupancy unless a call names another; files without the key keep the public 0."""
    assert small.config.decode_threshold == 0.0  # the fixture's json predates the key
    codes = parity["decode_codes"]
    thick = VQVAEConfig.from_dict(small.config.to_dict() | {"decode_threshold": -2})
    assert thick.decode_threshold == -2.0 and thick != small.config
    weights = tmp_path / "weights.bin"
    shutil.copy(vq_dir / "small_vqvae.bin", weights)
    path = save_vqvae(load_vqvae(weights, config=thick), tmp_path / "thick.safetensors")
    assert json.loads((tmp_path / "thick_config.json").read_text())["decode_threshold"] == -2.0
    again = load_vqvae(path)
    assert again.config.decode_threshold == -2.0
    occ = again.decode_occupancy(codes)
    assert torch.equal(occ, decoded > -2.0)
    assert occ.sum() > (decoded > 0).sum()  # the test can tell the thresholds apart
    assert torch.equal(again.decode_occupancy(codes, threshold=0.0), decoded > 0)
    with pytest.raises(ValueError, match="finite"):
        VQVAEConfig.from_dict(small.config.to_dict() | {"decode_threshold": float("nan")})


def test_shipped_demo_decoder_threshold():
    """The demo's robust decoder decodes at -2 (MODEL_CARD.md: 34.8 -> 26.8% defective one-step meshes)."""
    cfg = VQVAEConfig.from_json(Path(__file__).resolve().parents[1] / "models" / "demo" / "vqvae_config.json")
    assert cfg.decode_threshold == -2.0


# ----- files -----------------------------------------------------------------------------------


def test_safetensors_round_trip(small, parity, decoded, tmp_path):
    path = save_vqvae(small, tmp_path / "vq.safetensors")
    assert path.is_file() and (tmp_path / "vq_config.json").is_file()
    again = load_vqvae(path)  # config found beside the weights
    assert again.config == small.config
    for (k, a), (k2, b) in zip(small.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert torch.equal(again.decode(parity["decode_codes"]), decoded)
    assert torch.equal(again.encode(parity["voxels"].float()), parity["encoded_codes"])


def test_config_sources(vq_dir, small, tmp_path):
    weights = tmp_path / "weights.bin"
    shutil.copy(vq_dir / "small_vqvae.bin", weights)
    as_dict = load_vqvae(weights, config=small.config.to_dict())
    as_json = load_vqvae(weights, config=vq_dir / "small_vqvae_config.json")
    assert as_dict.config == as_json.config == small.config
    # no config beside the weights: the release defaults are assumed, which do not fit
    with pytest.raises(VQVAELoadError, match="config"):
        load_vqvae(weights)
    (tmp_path / "config.json").write_text(json.dumps(small.config.to_dict()))
    assert load_vqvae(weights).config == small.config


def test_half_precision_checkpoint_loads_as_float32(vq_dir, small, tmp_path):
    """The release stores block convolutions in fp16; loading casts to the model's dtype."""
    state = torch.load(vq_dir / "small_vqvae.bin", weights_only=True)
    half = {k: (v.half() if ".conv" in k and "blocks" in k else v) for k, v in state.items()}
    torch.save(half, tmp_path / "half.bin")
    model = load_vqvae(tmp_path / "half.bin", config=small.config)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    for k, v in model.state_dict().items():
        assert torch.equal(v, half[k].float())


# ----- clear errors ----------------------------------------------------------------------------


def test_bad_voxels(small):
    with pytest.raises(ValueError, match=r"\[B,1,64,64,64\].*resample"):
        small.encode(torch.zeros(1, 1, 32, 32, 32))
    with pytest.raises(ValueError, match=r"voxels\[None\]"):
        small.encode(torch.zeros(64, 64, 64))
    with pytest.raises(ValueError, match="shape"):
        small.encode(torch.zeros(1, 2, 64, 64, 64))


def test_bad_codes(small):
    ok = torch.zeros(1, 1024, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\[0, 64\).*tokenizer ids"):
        small.decode(ok + 64)
    with pytest.raises(ValueError, match="min -1"):
        small.decode(ok - 1)
    with pytest.raises(ValueError, match="exactly 1024 codes, got 1000"):
        small.decode(ok[:, :1000])
    with pytest.raises(ValueError, match=r"codes\[None\]"):
        small.decode(ok[0])
    with pytest.raises(TypeError, match="integer"):
        small.decode(ok.float())
    with pytest.raises(ValueError, match="batch_size"):
        small.decode(ok, batch_size=0)


@pytest.mark.parametrize("name", ["garbage.bin", "garbage.safetensors"])
def test_corrupt_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x00not a checkpoint" * 100)
    with pytest.raises(VQVAELoadError, match="could not read"):
        load_vqvae(path)


def test_truncated_and_non_state_dict_files(vq_dir, tmp_path):
    data = (vq_dir / "small_vqvae.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(VQVAELoadError, match="could not read"):
        load_vqvae(tmp_path / "cut.bin")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(VQVAELoadError, match="state dict"):
        load_vqvae(tmp_path / "list.pt")
    with pytest.raises(FileNotFoundError):
        load_vqvae(tmp_path / "missing.bin")


def test_other_architecture(vq_dir, small, tmp_path):
    # Other widths: the small weights into the release-sized model.
    with pytest.raises(VQVAELoadError, match=r"(?s)wrong shapes: Encoder.input_layer.weight.*pass a matching config"):
        load_vqvae(vq_dir / "small_vqvae.bin", config=VQVAEConfig())
    # Other depth: one ResBlock per stage leaves the file's second blocks unexpected.
    shallow = small.config.to_dict() | {"num_res_blocks": 1}
    with pytest.raises(VQVAELoadError, match="unexpected keys"):
        load_vqvae(vq_dir / "small_vqvae.bin", config=shallow)


def test_half_precision_needs_cuda(vq_dir, small):
    with pytest.raises(ValueError, match="cuda"):
        load_vqvae(vq_dir / "small_vqvae.bin", dtype="fp16")
    with pytest.raises(ValueError, match="CUDA"):
        small.to_inference_dtype(torch.bfloat16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_precision(vq_dir, parity, dtype):
    model = load_vqvae(vq_dir / "small_vqvae.bin", device="cuda", dtype=dtype)
    assert model.compute_dtype == dtype
    assert model.Encoder.blocks[0].norm1.weight.dtype == torch.float32
    assert model.vq.embeddings.weight.dtype == torch.float32
    logits = model.decode(parity["decode_codes"].cuda()).cpu()
    ref = parity["decoded_logits"]
    assert logits.dtype == torch.float32
    assert ((logits > 0) == (ref > 0)).float().mean() > 0.99
    codes = model.encode(parity["voxels"].cuda()).cpu()
    assert (codes == parity["encoded_codes"]).float().mean() > 0.9
