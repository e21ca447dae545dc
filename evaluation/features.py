"""Image (and text) feature extractors for the evaluation metrics: CLIP, Inception-v3, DINOv2.

Each extractor loads its model once, takes uint8 renders ``[N, H, W, 3|4]`` (RGBA is composited
on a white background, as the reward models see renders), resizes them on the device to the
model's input size (antialiased bicubic; renders are square and the object fills them, so there
is no centre crop), normalises, and runs in batches of ``batch_size``. Every constructor takes an
already-built model, so tests inject tiny random ones; ``load()`` builds the real one from local
weights and fails with a message that names the setting and the download command.

===========  ==========================================  =======================================
extractor    model                                       weights (first found)
===========  ==========================================  =======================================
clip         open_clip ``ViT-L-14`` (OpenAI weights);    ``checkpoint=`` / ``AR3D_CLIP_CHECKPOINT``
             image and text embeddings, L2-normalised    (a file), then open_clip's HF repo in the
                                                         HF cache (``timm/vit_large_patch14_clip_224.openai``)
inception    torchvision ``inception_v3``, the 2048-d    ``weights=`` / ``AR3D_INCEPTION_WEIGHTS``,
             pool features before the classifier         then the torch hub cache
                                                         (``inception_v3_google-0cc3c7bd.pth``)
dinov2       transformers ``Dinov2Model``, the CLS        ``model=`` / ``AR3D_DINOV2`` (folder or
             token after the final layer norm            HF id), then ``facebook/dinov2-base`` in
                                                         the HF cache
===========  ==========================================  =======================================

Weights are read without running pickled code (safetensors, or ``torch.load(weights_only=True)``)
and, with ``HF_HUB_OFFLINE=1``, nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch

from ..core.errors import Ar3dError
from ..core.hub import ModelNotFoundError, given_weights_file, offline

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CLIP_MODEL = "ViT-L-14"
DEFAULT_CLIP_PRETRAINED = "openai"
DEFAULT_DINOV2 = "facebook/dinov2-base"
INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"  # torchvision's IMAGENET1K_V1 file name
INCEPTION_URL = "https://download.pytorch.org/models/" + INCEPTION_FILE


class FeatureError(Ar3dError):
    """A feature extractor cannot be built (missing weights, bad model spec)."""


class ImageFeatures(Protocol):
    """What the metrics need of an extractor: a name, the feature size, and features for images."""

    name: str
    dim: int
    description: str

    def image_features(self, images: np.ndarray) -> np.ndarray: ...


def pick_device(device: str | torch.device | None) -> torch.device:
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


class _ImageModel:
    """Shared preprocessing and batching: uint8 renders → normalised tensors → features."""

    name = "image"
    description = ""

    def __init__(self, image_size: int | tuple[int, int], mean, std, device=None, batch_size: int = 32,
                 background: int = 255, dtype: torch.dtype | None = None):  # fmt: skip
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = pick_device(device)
        self.size = tuple(image_size) if isinstance(image_size, (tuple, list)) else (int(image_size),) * 2
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.batch_size = int(batch_size)
        self.background = int(background)
        self.dtype = dtype or torch.float32

    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        """uint8 [N, H, W, 3|4] → float [N, 3, size, size], composited, resized, normalised."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (3, 4):
            raise ValueError(f"images must be uint8 [N, H, W, 3|4], got {images.dtype} {images.shape}")
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        if x.shape[1] == 4:
            alpha = x[:, 3:4]
            x = x[:, :3] * alpha + (self.background / 255.0) * (1.0 - alpha)
        if tuple(x.shape[-2:]) != self.size:
            x = torch.nn.functional.interpolate(x, size=self.size, mode="bicubic", antialias=True, align_corners=False)
            x = x.clamp(0.0, 1.0)
        return ((x - self.mean) / self.std).to(self.dtype)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.inference_mode()
    def image_features(self, images: np.ndarray) -> np.ndarray:
        """Features of every image, float32 [N, dim], computed ``batch_size`` images at a time."""
        images = np.asarray(images)
        if len(images) == 0:
            return np.zeros((0, self.dim), np.float32)
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = self.preprocess(images[start : start + self.batch_size])
            out.append(self._forward(chunk).float().cpu())
        return torch.cat(out).numpy().astype(np.float32)


# ---------------------------------------------------------------------------------------------
# CLIP


def _open_clip():
    from ..core.rewards.hps import open_clip_module

    return open_clip_module(FeatureError, "CLIP score", "eval")


def _clip_weights(model_name: str, pretrained: str, checkpoint: str | None) -> Path:
    path = given_weights_file(checkpoint, env="AR3D_CLIP_CHECKPOINT", filename="an open_clip checkpoint", what="CLIP weights")
    if path is not None:
        return path
    open_clip = _open_clip()
    cfg = open_clip.get_pretrained_cfg(model_name, pretrained) or {}
    hub = (cfg.get("hf_hub") or "").rstrip("/")
    if not hub:
        raise ModelNotFoundError(
            f"CLIP weights: open_clip knows no Hugging Face copy of {model_name}/{pretrained}; "
            "set AR3D_CLIP_CHECKPOINT to a checkpoint file"
        )
    repo, filename = (hub.rsplit("/", 1) if hub.count("/") >= 2 else (hub, ""))
    names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    from huggingface_hub import hf_hub_download

    for name in names:
        try:
            return Path(hf_hub_download(repo, name, local_files_only=offline()))
        except Exception:
            continue
    raise ModelNotFoundError(
        f"CLIP weights ({model_name}, {pretrained}) are not in the Hugging Face cache: run "
        f"`hf download {repo} {names[0]}` on a machine with internet (set HF_HOME to share the cache), "
        "or set AR3D_CLIP_CHECKPOINT to the file."
    )


class CLIPFeatures(_ImageModel):
    """CLIP image and text embeddings (L2-normalised) for the CLIP score."""

    name = "clip"

    def __init__(self, model, tokenizer, *, image_size=None, mean=None, std=None, device=None,
                 batch_size: int = 32, background: int = 255, description: str = "CLIP"):  # fmt: skip
        visual = getattr(model, "visual", None)  # open_clip keeps the preprocessing there
        image_size = image_size or getattr(visual, "image_size", None) or 224
        mean = mean or getattr(visual, "image_mean", None) or (0.48145466, 0.4578275, 0.40821073)
        std = std or getattr(visual, "image_std", None) or (0.26862954, 0.26130258, 0.27577711)
        super().__init__(image_size, mean, std, device, batch_size, background)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.description = description
        with torch.inference_mode():
            probe = self.model.encode_text(self.tokenizer(["a"]).to(self.device))
        self.dim = int(probe.shape[-1])

    @classmethod
    def load(cls, model: str = DEFAULT_CLIP_MODEL, checkpoint: str | None = None, pretrained: str = DEFAULT_CLIP_PRETRAINED,
             device=None, batch_size: int = 32) -> "CLIPFeatures":  # fmt: skip
        """An open_clip architecture (a name, or the path of a model-config JSON) with weights
        from ``checkpoint``, ``AR3D_CLIP_CHECKPOINT`` or open_clip's Hugging Face repo in the cache."""
        open_clip = _open_clip()
        from ..core.rewards.hps import open_clip_architecture

        name = open_clip_architecture(open_clip, model, FeatureError, "CLIP model")
        weights = _clip_weights(name, pretrained, checkpoint)
        cfg = open_clip.get_pretrained_cfg(name, pretrained) or {}
        net = open_clip.create_model(name, pretrained=None, device="cpu", force_quick_gelu=bool(cfg.get("quick_gelu")))
        try:
            open_clip.load_checkpoint(net, str(weights), strict=True, weights_only=True)
        except Exception as e:
            raise FeatureError(f"CLIP weights '{weights}' do not load into open_clip '{name}': {type(e).__name__}: {str(e)[:300]}") from e
        pre = open_clip.get_model_preprocess_cfg(net)
        return cls(net, open_clip.get_tokenizer(name), image_size=pre["size"], mean=pre["mean"], std=pre["std"],
                   device=device, batch_size=batch_size, description=f"open_clip {name} ({weights.name})")  # fmt: skip

    def _forward(self, x):
        return self.model.encode_image(x, normalize=True)

    @torch.inference_mode()
    def text_features(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings, float32 [T, dim]."""
        out = []
        texts = list(texts)
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(texts[start : start + self.batch_size]).to(self.device)
            out.append(self.model.encode_text(tokens, normalize=True).float().cpu())
        return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, self.dim), np.float32)


# ---------------------------------------------------------------------------------------------
# Inception-v3


def _inception_weights(weights: str | None) -> Path:
    path = given_weights_file(weights, env="AR3D_INCEPTION_WEIGHTS", filename=INCEPTION_FILE, what="Inception-v3 weights")
    if path is not None:
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    if cached.is_file():
        return cached
    raise ModelNotFoundError(
        f"Inception-v3 weights not found (looked in {cached}). Download {INCEPTION_URL} on a machine with "
        "internet (or run `python -c \"import torchvision; torchvision.models.inception_v3(weights='DEFAULT')\"` "
        "there, which fills the torch hub cache) and set AR3D_INCEPTION_WEIGHTS to the file."
    )


def build_inception(state_dict: dict | None = None) -> torch.nn.Module:
    """torchvision's Inception-v3 with the classifier replaced by identity: 2048-d pool features.

    ``transform_input=True`` as torchvision's ImageNet weights expect (they were trained on inputs
    scaled to [-1, 1]; the model converts from ImageNet normalisation itself)."""
    from ..core.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    from torchvision.models import inception_v3

    model = inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=state_dict is None)
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=True)
    model.AuxLogits = None
    model.aux_logits = False
    model.fc = torch.nn.Identity()
    return model.eval()


class InceptionFeatures(_ImageModel):
    """Inception-v3 2048-d pool features (KD/FD "incep")."""

    name = "inception"

    def __init__(self, model: torch.nn.Module | None = None, *, image_size: int = 299, device=None,
                 batch_size: int = 32, background: int = 255, description: str = "Inception-v3"):  # fmt: skip
        super().__init__(image_size, IMAGENET_MEAN, IMAGENET_STD, device, batch_size, background)
        model = model if model is not None else build_inception()
        if hasattr(model, "fc") and not isinstance(model.fc, torch.nn.Identity):
            model.fc = torch.nn.Identity()
        if hasattr(model, "AuxLogits"):
            model.AuxLogits = None
            model.aux_logits = False
        self.model = model.to(self.device).eval()
        self.description = description
        self.dim = 2048

    @classmethod
    def load(cls, weights: str | None = None, device=None, batch_size: int = 32) -> "InceptionFeatures":
        path = _inception_weights(weights)
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                sd = load_file(str(path))
            else:
                sd = torch.load(str(path), map_location="cpu", weights_only=True)
            sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
            model = build_inception(sd)
        except Exception as e:
            raise FeatureError(
                f"Inception-v3 weights '{path}' do not load into torchvision's inception_v3: {type(e).__name__}: "
                f"{str(e)[:300]}. Use torchvision's {INCEPTION_FILE}."
            ) from e
        return cls(model, device=device, batch_size=batch_size, description=f"torchvision inception_v3 ({path.name})")

    def _forward(self, x):
        out = self.model(x)
        return out.logits if hasattr(out, "logits") else out


# ---------------------------------------------------------------------------------------------
# DINOv2


class DINOv2Features(_ImageModel):
    """DINOv2 CLS-token features (KD/FD "dinov2"): the final layer-normed CLS token."""

    name = "dinov2"

    def __init__(self, model, *, image_size: int = 224, device=None, batch_size: int = 32, background: int = 255,
                 description: str = "DINOv2"):  # fmt: skip
        super().__init__(image_size, IMAGENET_MEAN, IMAGENET_STD, device, batch_size, background)
        self.model = model.to(self.device).eval()
        self.description = description
        self.dim = int(model.config.hidden_size)

    @classmethod
    def load(cls, spec: str | None = None, device=None, batch_size: int = 32, image_size: int = 224) -> "DINOv2Features":
        """A local folder or Hugging Face id (``AR3D_DINOV2``, default ``facebook/dinov2-base``)."""
        from transformers import Dinov2Model

        spec = spec or os.environ.get("AR3D_DINOV2") or DEFAULT_DINOV2
        local = Path(spec).expanduser()
        if local.exists() and not (local / "config.json").is_file():
            raise ModelNotFoundError(f"DINOv2: '{local}' is not a model folder (no config.json)")
        try:
            if local.exists():
                model = Dinov2Model.from_pretrained(str(local))
            else:
                model = Dinov2Model.from_pretrained(spec, local_files_only=offline())
        except OSError as e:
            raise ModelNotFoundError(
                f"DINOv2 weights '{spec}' not found locally: run `hf download {spec}` on a machine with internet "
                "(set HF_HOME to share the cache), or set AR3D_DINOV2 to a folder holding the model."
            ) from e
        return cls(model, image_size=image_size, device=device, batch_size=batch_size, description=f"DINOv2 ({spec})")

    def _forward(self, x):
        return self.model(pixel_values=x).pooler_output


# ---------------------------------------------------------------------------------------------
# the set an evaluation uses

EXTRACTORS = ("clip", "inception", "dinov2")


class FeatureSet:
    """The extractors of one evaluation, and why any of them is missing.

    ``clip`` gives the CLIP score; ``inception`` and ``dinov2`` the KD/FD features. An extractor
    that is None has a reason in ``unavailable`` (shown in the report)."""

    def __init__(self, clip: CLIPFeatures | None = None, inception: InceptionFeatures | None = None,
                 dinov2: DINOv2Features | None = None, unavailable: dict[str, str] | None = None):  # fmt: skip
        self.clip, self.inception, self.dinov2 = clip, inception, dinov2
        self.unavailable = dict(unavailable or {})
        for name in EXTRACTORS:
            if getattr(self, name) is None:
                self.unavailable.setdefault(name, "not requested")

    def get(self, name: str):
        return getattr(self, name)

    def available(self) -> list[str]:
        return [n for n in EXTRACTORS if getattr(self, n) is not None]

    def describe(self) -> dict[str, dict]:
        return {
            n: ({"available": True, "model": getattr(self, n).description} if getattr(self, n) is not None
                else {"available": False, "reason": self.unavailable.get(n, "not loaded")})
            for n in EXTRACTORS
        }  # fmt: skip

    @classmethod
    def load(cls, metrics: Sequence[str] | None = None, *, clip_model: str = DEFAULT_CLIP_MODEL,
             clip_checkpoint: str | None = None, inception_weights: str | None = None, dinov2: str | None = None,
             device=None, batch_size: int = 32) -> "FeatureSet":  # fmt: skip
        """``metrics=None`` ("auto"): every extractor whose weights are found; the others are
        reported unavailable with the reason. An explicit list (or an explicit weights argument)
        makes those extractors required: a missing one raises."""
        if metrics is not None:
            bad = [m for m in metrics if m not in EXTRACTORS]
            if bad:
                raise FeatureError(f"unknown metric feature(s) {bad}; choose from {', '.join(EXTRACTORS)}")
        wanted = list(EXTRACTORS) if metrics is None else list(metrics)
        required = set(metrics or ())
        required |= {n for n, given in (("clip", clip_checkpoint), ("inception", inception_weights), ("dinov2", dinov2)) if given}
        wanted += [n for n in required if n not in wanted]
        loaders = {
            "clip": lambda: CLIPFeatures.load(clip_model, clip_checkpoint, device=device, batch_size=batch_size),
            "inception": lambda: InceptionFeatures.load(inception_weights, device=device, batch_size=batch_size),
            "dinov2": lambda: DINOv2Features.load(dinov2, device=device, batch_size=batch_size),
        }
        got, unavailable = {}, {}
        for name in EXTRACTORS:
            if name not in wanted:
                unavailable[name] = "not requested (--metrics)"
                continue
            try:
                got[name] = loaders[name]()
            except (Ar3dError, ImportError) as e:
                if name in required:
                    raise
                unavailable[name] = str(e)
        return cls(unavailable=unavailable, **got)
