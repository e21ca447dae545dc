"""HPS v2.1: human preference score of the rendered views for the prompt.

The model is OpenCLIP ViT-H-14 with the HPS v2.1 weights (``HPS_v2.1_compressed.pt`` of the
Hugging Face repo ``xswu/HPSv2``, a ``{"state_dict": …}`` of the whole CLIP). The score of an
image is the cosine of its normalised image feature with the prompt's text feature (~0.2–0.35
for sensible images); a sample's score is the **max over its views**, as in the paper.

Unlike the public ``hpsv2.score()`` (which reloads the checkpoint on every call and scores one
image per forward), the model is loaded once and all views of all samples go through in
batches. Preprocessing is the official hpsv2 one, run on the device: hpsv2 builds its open_clip
validation transform with ``resize_longest_max=True``, which converts the image to a float tensor
first and then resizes its longest side to the input size (bicubic, antialiased, no clamp after
the resize), pads the other side with 0 and normalises with the model's mean/std. The official
transform takes RGB (RGBA would reach the model as 4 channels), so views are composited on white
before it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..hub import resolve_weights_file
from .base import RewardBatch, RewardConfigError, SampleScore

HPS_REPO = "xswu/HPSv2"
HPS_FILE = "HPS_v2.1_compressed.pt"


@dataclass
class HPSConfig:
    """checkpoint: path of the HPS weights (.pt with a state_dict, or .safetensors); None →
        ``AR3D_HPS_CHECKPOINT``, then ``HPS_v2.1_compressed.pt`` of ``xswu/HPSv2`` in the HF cache.
    model: the open_clip architecture ("ViT-H-14"), or the path of an open_clip model-config
        JSON (tests use a tiny one).
    device: None → "cuda" when available, else "cpu". dtype: "auto" → fp16 on CUDA, fp32 on CPU.
    batch_size: images per forward pass.
    reduce: how the views of a sample combine: "max" (the paper) or "mean".
    background: grey level the transparent background is composited on.
    """

    checkpoint: str | None = None
    model: str = "ViT-H-14"
    device: str | None = None
    dtype: str = "auto"
    batch_size: int = 64
    reduce: str = "max"
    background: int = 255

    def __post_init__(self) -> None:
        if self.reduce not in ("max", "mean"):
            raise RewardConfigError(f"hps.reduce must be 'max' or 'mean', got {self.reduce!r}")
        if self.batch_size < 1:
            raise RewardConfigError("hps.batch_size must be at least 1")


def _open_clip():
    return open_clip_module(RewardConfigError, "the HPS reward", "rewards")


def open_clip_module(error=RewardConfigError, who: str = "the HPS reward", extra: str = "rewards"):
    """open_clip, importable beside a mismatched torchvision (see ``ar3d.core.torchvision_compat``)."""
    from ..torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    try:
        import open_clip
    except ImportError as e:
        raise error(f"{who} needs open_clip: pip install 'ar3d[{extra}]' (open_clip_torch)") from e
    return open_clip


def open_clip_architecture(open_clip, model: str, error=RewardConfigError, what: str = "hps.model") -> str:
    """open_clip's name for ``model``: a known architecture, or a model-config JSON file (registered here)."""
    name = model
    if model.endswith(".json"):
        if not os.path.isfile(model):
            raise error(f"{what}: no open_clip model config at '{model}'")
        open_clip.add_model_config(model)
        name = Path(model).stem
    if name not in open_clip.list_models():
        raise error(f"{what} '{model}' is not an open_clip architecture (see open_clip.list_models())")
    return name


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """HPS weights without pickle code execution (``weights_only=True``), or safetensors."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise RewardConfigError(
            f"could not read HPS weights '{path}' as a weights-only checkpoint ({e}). Convert it to "
            "safetensors on a trusted machine, or pass the original HPS_v2.1_compressed.pt."
        ) from e
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict):
        raise RewardConfigError(f"'{path}' holds no state_dict")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def resize_longest_and_pad(x: torch.Tensor, size: int) -> torch.Tensor:
    """hpsv2's ``ResizeMaxSize`` on float images [N, C, H, W]: the longest side to ``size``
    (bicubic, antialiased like torchvision's tensor ``resize``; values may overshoot [0, 1] and are
    kept, as there), the other side padded with 0 on both ends to ``size``."""
    h, w = x.shape[-2:]
    scale = size / float(max(h, w))
    if scale == 1.0:
        return x
    nh, nw = round(h * scale), round(w * scale)
    x = torch.nn.functional.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
    ph, pw = size - nh, size - nw
    if ph or pw:
        x = torch.nn.functional.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=0.0)
    return x


class HPSv21:
    """The HPS v2.1 reward (name "hps", one sub-score, values in [-1, 1], ~0.2–0.35 in practice)."""

    name = "hps"
    sub_scores = 1
    value_range = (-1.0, 1.0)
    needs = frozenset({"views"})

    def __init__(self, config: HPSConfig | None = None, **options) -> None:
        self.config = config or HPSConfig(**options)
        cfg = self.config
        open_clip = _open_clip()
        model_name = open_clip_architecture(open_clip, cfg.model)
        self.device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if cfg.dtype == "auto":
            self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        else:
            self.dtype = getattr(torch, cfg.dtype)
        checkpoint = resolve_weights_file(
            cfg.checkpoint, env="AR3D_HPS_CHECKPOINT", repo_id=HPS_REPO, filename=HPS_FILE,
            what="The HPS v2.1 checkpoint",
        )
        model = open_clip.create_model(model_name, pretrained=None, device="cpu")
        try:
            missing, unexpected = model.load_state_dict(load_state_dict(checkpoint), strict=False)
            problem = (
                f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
                if missing or unexpected else None
            )  # fmt: skip
        except RuntimeError as e:  # shape mismatches
            problem = str(e).splitlines()[-1].strip()
        if problem:
            raise RewardConfigError(
                f"HPS weights '{checkpoint}' do not fit open_clip '{model_name}': {problem}. Check hps.model."
            )
        self.model = model.to(self.device, self.dtype).eval()
        self.tokenizer = open_clip.get_tokenizer(model_name)
        pre = open_clip.get_model_preprocess_cfg(model)
        self.size = tuple(pre["size"]) if isinstance(pre["size"], (tuple, list)) else (pre["size"],) * 2
        self.mean = torch.tensor(pre["mean"], device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(pre["std"], device=self.device).view(1, 3, 1, 1)

    def preprocess(self, views: np.ndarray) -> torch.Tensor:
        """uint8 [N, H, W, 3|4] → normalised [N, 3, size, size] in the model's dtype.

        Everything after the host-to-device copy of the uint8 pixels runs on the device:
        compositing 96 RGBA views of 512² on the CPU took longer than ViT-H-14 on them."""
        x = torch.from_numpy(np.ascontiguousarray(views)).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float() / 255.0
        if x.shape[1] == 4:
            alpha = x[:, 3:4]
            x = x[:, :3] * alpha + (self.config.background / 255.0) * (1.0 - alpha)
        x = resize_longest_and_pad(x, self.size[0])
        return ((x - self.mean) / self.std).to(self.dtype)

    @torch.inference_mode()
    def image_features(self, views: np.ndarray) -> torch.Tensor:
        feats = []
        for start in range(0, len(views), self.config.batch_size):
            chunk = self.preprocess(views[start : start + self.config.batch_size])
            feats.append(self.model.encode_image(chunk, normalize=True).float())
        return torch.cat(feats)

    @torch.inference_mode()
    def text_features(self, prompts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(prompts)).to(self.device)
        return self.model.encode_text(tokens, normalize=True).float()

    def score(self, batch: RewardBatch) -> list[SampleScore]:
        rendered = [i for i in range(len(batch)) if batch.views is not None and batch.views[i] is not None]
        results: list[SampleScore] = [SampleScore.fail("no rendered views") for _ in range(len(batch))]
        if not rendered:
            return results
        views = [np.asarray(batch.views[i]) for i in rendered]
        counts = [len(v) for v in views]
        if len({v.shape[1:] for v in views}) == 1:
            img = self.image_features(np.concatenate(views))
        else:  # mixed sizes or RGB/RGBA: one sample at a time
            img = torch.cat([self.image_features(v) for v in views])
        prompts = sorted({batch.prompts[i] for i in rendered})
        txt = self.text_features(prompts)
        row = {p: k for k, p in enumerate(prompts)}
        start = 0
        for i, n in zip(rendered, counts):
            per_view = (img[start : start + n] @ txt[row[batch.prompts[i]]]).cpu().numpy()
            start += n
            value = per_view.max() if self.config.reduce == "max" else per_view.mean()
            results[i] = SampleScore(float(value), details={"per_view": [round(float(s), 5) for s in per_view]})
        return results
