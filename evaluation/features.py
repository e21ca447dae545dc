"""Image (and text) feature extractors for the evaluation metrics: CLIP, Inception-v3, DINOv2.

Each extractor loads its model once, takes uint8 renders ``[N, H, W, 3|4]`` (RGBA is composited
on a white background, as the reward models see renders), resizes them on the device to the
model's input size (antialiased bicubic, clamped to [0, 1]: clean-fid's PIL resize; renders are
square and the object fills them, so there is no centre crop), normalises, and runs in batches
of ``batch_size``. Every constructor takes an already-built model, so tests inject tiny random
ones; ``load()`` builds the real one from local weights and fails with a message that names the
setting and the download command.

============  ==========================================  =======================================
extractor     model                                       weights (first found)
============  ==========================================  =======================================
clip          open_clip ``ViT-L-14`` (OpenAI weights);    ``checkpoint=`` / ``AR3D_CLIP_CHECKPOINT``
              image and text embeddings, L2-normalised    (a file), then open_clip's HF repo in the
                                                          HF cache (``timm/vit_large_patch14_clip_224.openai``)
inception     the FID Inception-v3 (``fid_inception``:    ``weights=`` / ``AR3D_INCEPTION_WEIGHTS``,
              TF's 2015 graph, as pytorch-fid, torch-     then the torch hub cache
              metrics, clean-fid), 2048-d pool features   (``pt_inception-2015-12-05-6726825d.pth``)
inception_tv  torchvision ``inception_v3`` (ImageNet),    ``weights=`` / ``AR3D_INCEPTION_TV_WEIGHTS``,
              2048-d pool features: not the FID network   then the torch hub cache
                                                          (``inception_v3_google-0cc3c7bd.pth``)
dinov2        transformers ``Dinov2Model``, the CLS        ``model=`` / ``AR3D_DINOV2`` (folder or
              token after the final layer norm            HF id), then ``facebook/dinov2-base`` in
                                                          the HF cache
============  ==========================================  =======================================

Weights are read without running pickled code (safetensors, or ``torch.load(weights_only=True)``)
and, with ``HF_HUB_OFFLINE=1``, nothing is downloaded. Every extractor knows its weights file and
that file's sha256 (``identity()``), which the KD/FD results carry, so numbers from different
features are never compared unawares.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch

from ..core.errors import Ar3dError
from ..core.hub import ModelNotFoundError, file_sha256, given_weights_file, offline
from .fid_inception import (
    FID_INCEPTION_FILE,
    FID_INCEPTION_SHA256_PREFIX,
    FID_INCEPTION_URL,
    build_fid_inception,
    looks_like_torchvision_inception,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CLIP_MODEL = "ViT-L-14"
DEFAULT_CLIP_PRETRAINED = "openai"
DEFAULT_DINOV2 = "facebook/dinov2-base"
TV_INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"  # torchvision's IMAGENET1K_V1 file name
TV_INCEPTION_URL = "https://download.pytorch.org/models/" + TV_INCEPTION_FILE
TV_INCEPTION_SHA256_PREFIX = "0cc3c7bd"  # the torch hub convention: the name carries the hash's start


class FeatureError(Ar3dError):
    """A feature extractor cannot be built (missing weights, bad model spec)."""


class ImageFeatures(Protocol):
    """What the metrics need of an extractor: a name, the feature size, and features for images."""

    name: str
    dim: int
    description: str

    def image_features(self, images: np.ndarray) -> np.ndarray: ...

    def identity(self) -> dict: ...


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
    extractor = "image"  # the architecture, as the KD/FD results name it
    reference_sha256_prefix: str | None = None  # the published weights' hash, where one is known
    weights_file: Path | None = None  # set by load(); None for a model built in memory
    sha256: str | None = None

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

    def _weights(self, path: Path | None) -> None:
        self.weights_file = None if path is None else Path(path)
        self.sha256 = None if path is None else file_sha256(path)

    def identity(self) -> dict:
        """Which features these are: the extractor, its weights file and the file's sha256 (None
        for weights built in memory), and whether they are the published weights (None: unknown)."""
        reference = None
        if self.reference_sha256_prefix and self.sha256:
            reference = self.sha256.startswith(self.reference_sha256_prefix)
        return {"extractor": self.extractor, "weights": None if self.weights_file is None else self.weights_file.name,
                "sha256": self.sha256, "reference_weights": reference}  # fmt: skip

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
    extractor = "open_clip"

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
        out = cls(net, open_clip.get_tokenizer(name), image_size=pre["size"], mean=pre["mean"], std=pre["std"],
                  device=device, batch_size=batch_size, description=f"open_clip {name} ({weights.name})")  # fmt: skip
        out.extractor = f"open_clip {name}"
        out._weights(weights)
        return out

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
# Inception-v3: the FID network (default) and torchvision's


def _hub_file(given: str | None, env: str, filename: str, what: str, how: str) -> Path:
    """A weights file: given, the ``env`` setting, then ``filename`` in the torch hub cache."""
    path = given_weights_file(given, env=env, filename=filename, what=what)
    if path is not None:
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if cached.is_file():
        return cached
    raise ModelNotFoundError(f"{what} not found (looked in {cached}). {how} Or set {env} to the file.")


def _read_state_dict(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    return sd.get("state_dict", sd) if isinstance(sd, dict) else sd


class FIDInceptionFeatures(_ImageModel):
    """The FID Inception-v3's 2048-d pool features (KD/FD "inception"), the features published FID
    and KID numbers use (see ``fid_inception``). Inputs scaled to [-1, 1] as pytorch-fid does."""

    name = "inception"
    extractor = "fid-inception-v3"
    reference_sha256_prefix = FID_INCEPTION_SHA256_PREFIX

    def __init__(self, model: torch.nn.Module | None = None, *, image_size: int = 299, device=None,
                 batch_size: int = 32, background: int = 255, description: str = "FID Inception-v3"):  # fmt: skip
        super().__init__(image_size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), device, batch_size, background)
        self.model = (model if model is not None else build_fid_inception()).to(self.device).eval()
        self.description = description
        self.dim = 2048

    @classmethod
    def load(cls, weights: str | None = None, device=None, batch_size: int = 32) -> "FIDInceptionFeatures":
        path = _hub_file(weights, "AR3D_INCEPTION_WEIGHTS", FID_INCEPTION_FILE, "FID Inception weights",
                         f"On a machine with internet download {FID_INCEPTION_URL} (pytorch-fid's file; `python -c "
                         "\"from pytorch_fid.inception import fid_inception_v3; fid_inception_v3()\"` puts it in the torch "
                         "hub cache) and copy it into that folder.")  # fmt: skip
        try:
            sd = _read_state_dict(path)
        except Exception as e:
            raise FeatureError(f"FID Inception weights '{path}' cannot be read as a weights-only checkpoint: {e}") from e
        if isinstance(sd, dict) and looks_like_torchvision_inception(sd):
            raise FeatureError(
                f"'{path}' holds torchvision's ImageNet Inception-v3, not the FID Inception: pass it as "
                f"--inception-tv-weights (AR3D_INCEPTION_TV_WEIGHTS), and give --inception-weights {FID_INCEPTION_FILE}."
            )
        try:
            model = build_fid_inception(sd)
        except Exception as e:
            raise FeatureError(
                f"FID Inception weights '{path}' do not load into the FID Inception-v3: {type(e).__name__}: "
                f"{str(e)[:300]}. Use pytorch-fid's {FID_INCEPTION_FILE}."
            ) from e
        out = cls(model, device=device, batch_size=batch_size, description=f"FID Inception-v3 ({path.name})")
        out._weights(path)
        return out

    def _forward(self, x):
        return self.model(x)


def build_torchvision_inception(state_dict: dict | None = None) -> torch.nn.Module:
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


class TorchvisionInceptionFeatures(_ImageModel):
    """torchvision's ImageNet Inception-v3 2048-d pool features (KD/FD "inception_tv"). Not the
    network published FID/KID numbers use: compare these only with other ar3d runs."""

    name = "inception_tv"
    extractor = "torchvision-inception-v3"
    reference_sha256_prefix = TV_INCEPTION_SHA256_PREFIX

    def __init__(self, model: torch.nn.Module | None = None, *, image_size: int = 299, device=None,
                 batch_size: int = 32, background: int = 255, description: str = "torchvision Inception-v3"):  # fmt: skip
        super().__init__(image_size, IMAGENET_MEAN, IMAGENET_STD, device, batch_size, background)
        model = model if model is not None else build_torchvision_inception()
        if hasattr(model, "fc") and not isinstance(model.fc, torch.nn.Identity):
            model.fc = torch.nn.Identity()
        if hasattr(model, "AuxLogits"):
            model.AuxLogits = None
            model.aux_logits = False
        self.model = model.to(self.device).eval()
        self.description = description
        self.dim = 2048

    @classmethod
    def load(cls, weights: str | None = None, device=None, batch_size: int = 32) -> "TorchvisionInceptionFeatures":
        path = _hub_file(weights, "AR3D_INCEPTION_TV_WEIGHTS", TV_INCEPTION_FILE, "torchvision Inception-v3 weights",
                         f"Download {TV_INCEPTION_URL} on a machine with internet (or run `python -c \"import torchvision; "
                         "torchvision.models.inception_v3(weights='DEFAULT')\"` there, which fills the torch hub cache).")  # fmt: skip
        try:
            model = build_torchvision_inception(_read_state_dict(path))
        except Exception as e:
            raise FeatureError(
                f"Inception-v3 weights '{path}' do not load into torchvision's inception_v3: {type(e).__name__}: "
                f"{str(e)[:300]}. Use torchvision's {TV_INCEPTION_FILE}."
            ) from e
        out = cls(model, device=device, batch_size=batch_size, description=f"torchvision inception_v3 ({path.name})")
        out._weights(path)
        return out

    def _forward(self, x):
        out = self.model(x)
        return out.logits if hasattr(out, "logits") else out


# ---------------------------------------------------------------------------------------------
# DINOv2


class DINOv2Features(_ImageModel):
    """DINOv2 CLS-token features (KD/FD "dinov2"): the final layer-normed CLS token."""

    name = "dinov2"
    extractor = "dinov2"

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
        out = cls(model, image_size=image_size, device=device, batch_size=batch_size, description=f"DINOv2 ({spec})")
        out._weights(_dinov2_weights_file(local if local.exists() else None, spec))
        return out

    def _forward(self, x):
        return self.model(pixel_values=x).pooler_output


DINOV2_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _dinov2_weights_file(folder: Path | None, repo_id: str) -> Path | None:
    """The weights file a DINOv2 folder or cached Hugging Face id loaded from (for its sha256)."""
    for name in DINOV2_WEIGHT_FILES:
        if folder is not None:
            if (folder / name).is_file():
                return folder / name
            continue
        try:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(repo_id, name)
        except Exception:
            found = None
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


# ---------------------------------------------------------------------------------------------
# the set an evaluation uses

EXTRACTORS = ("clip", "inception", "inception_tv", "dinov2")
KD_FEATURES = ("inception", "inception_tv", "dinov2")  # the features KD and FD are computed on
AUTO_TV = "not requested (the FID Inception is used; --metrics ...,inception_tv adds torchvision's)"


class FeatureSet:
    """The extractors of one evaluation, and why any of them is missing.

    ``clip`` gives the CLIP score; ``inception`` (FID Inception), ``inception_tv`` (torchvision's)
    and ``dinov2`` the KD/FD features. An extractor that is None has a reason in ``unavailable``
    (shown in the report)."""

    def __init__(self, clip: CLIPFeatures | None = None, inception: FIDInceptionFeatures | None = None,
                 dinov2: DINOv2Features | None = None, unavailable: dict[str, str] | None = None,
                 inception_tv: TorchvisionInceptionFeatures | None = None):  # fmt: skip
        self.clip, self.inception, self.inception_tv, self.dinov2 = clip, inception, inception_tv, dinov2
        self.unavailable = dict(unavailable or {})
        for name in EXTRACTORS:
            if getattr(self, name) is None:
                self.unavailable.setdefault(name, "not requested")

    def get(self, name: str):
        return getattr(self, name, None)

    def available(self) -> list[str]:
        return [n for n in EXTRACTORS if getattr(self, n) is not None]

    def identity(self, name: str) -> dict | None:
        ext = self.get(name)
        return None if ext is None else ext.identity()

    def describe(self) -> dict[str, dict]:
        return {
            n: ({"available": True, "model": getattr(self, n).description, **getattr(self, n).identity()}
                if getattr(self, n) is not None else {"available": False, "reason": self.unavailable.get(n, "not loaded")})
            for n in EXTRACTORS
        }  # fmt: skip

    @classmethod
    def load(cls, metrics: Sequence[str] | None = None, *, clip_model: str = DEFAULT_CLIP_MODEL,
             clip_checkpoint: str | None = None, inception_weights: str | None = None, dinov2: str | None = None,
             device=None, batch_size: int = 32, inception_tv_weights: str | None = None) -> "FeatureSet":  # fmt: skip
        """``metrics=None`` ("auto"): clip, inception (FID) and dinov2 whenever their weights are
        found, the others reported unavailable with the reason; torchvision's Inception only when
        the FID Inception's weights are missing (its KD/FD then say so by their name). An explicit
        list (or an explicit weights argument) makes those extractors required: a missing one raises."""
        if metrics is not None:
            bad = [m for m in metrics if m not in EXTRACTORS]
            if bad:
                raise FeatureError(f"unknown metric feature(s) {bad}; choose from {', '.join(EXTRACTORS)}")
        wanted = [n for n in EXTRACTORS if n != "inception_tv"] if metrics is None else list(metrics)
        given = (("clip", clip_checkpoint), ("inception", inception_weights), ("inception_tv", inception_tv_weights),
                 ("dinov2", dinov2))  # fmt: skip
        required = set(metrics or ()) | {n for n, g in given if g}
        wanted += [n for n in required if n not in wanted]
        loaders = {
            "clip": lambda: CLIPFeatures.load(clip_model, clip_checkpoint, device=device, batch_size=batch_size),
            "inception": lambda: FIDInceptionFeatures.load(inception_weights, device=device, batch_size=batch_size),
            "inception_tv": lambda: TorchvisionInceptionFeatures.load(inception_tv_weights, device=device, batch_size=batch_size),
            "dinov2": lambda: DINOv2Features.load(dinov2, device=device, batch_size=batch_size),
        }
        got, unavailable = {}, {}
        for name in EXTRACTORS:
            fallback = name == "inception_tv" and metrics is None and name not in wanted
            if name not in wanted and not fallback:
                unavailable[name] = "not requested (--metrics)"
                continue
            if fallback and "inception" in got:
                unavailable[name] = AUTO_TV
                continue
            try:
                got[name] = loaders[name]()
            except (Ar3dError, ImportError) as e:
                if name in required:
                    raise
                unavailable[name] = str(e)
        return cls(unavailable=unavailable, **got)


def feature_mismatches(a: dict, b: dict) -> list[str]:
    """How two runs' features differ, from their ``describe()`` (eval.json "features"): one line
    per extractor available in both whose architecture or weights differ. Runs written before
    extractors recorded their weights' sha256 compare by description."""
    out = []
    for name in sorted(set(a) & set(b)):
        fa, fb = a[name] or {}, b[name] or {}
        if not (fa.get("available") and fb.get("available")):
            continue
        if "sha256" in fa and "sha256" in fb:
            same = (fa.get("extractor"), fa.get("sha256")) == (fb.get("extractor"), fb.get("sha256"))
        else:
            same = fa.get("model") == fb.get("model")
        if not same:
            out.append(f"{name}: {_ident(fa)} vs {_ident(fb)}")
    return out


def _ident(f: dict) -> str:
    sha = f.get("sha256")
    weights = f.get("weights") or ("weights in memory" if "sha256" in f else "weights not recorded")
    return f"{f.get('extractor') or f.get('model')} ({weights}, sha256 {sha[:12] + '…' if sha else 'unknown'})"
