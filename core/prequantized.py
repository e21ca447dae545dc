"""Pre-quantized policy folders: written once by `ar3d quantize`, loaded without a bf16 copy.

Quantizing at load (core/quantize.py) reads the full-precision weights and then converts them on
every start. A folder written here holds the 8-bit weights and their fp32 per-output-channel
scales already (half the bytes to download and read), so a start loads those tensors straight
onto the device: the model is built with its parameters on the meta device, the `QuantLinear`
modules are made from the stored tensors by the same `quantize_model` traversal (same fused
q/k/v and gate/up layout), and only the rest (embedding, norms, biases, vision tower) is cast to
the run's dtype. The tensors equal those quantize-at-load makes from a source stored in that
precision (bf16 checkpoints: always), bit for bit.

Layout: the source folder's files (config, tokenizer, bundled VQ-VAE, model card, ...) copied
as they are; the weights in `WEIGHTS_FILE` (state-dict names, fused groups once); `METADATA_FILE`
with precision, scheme, the quantized modules, the source's identity (sha256 of its weight files)
and the ar3d version. Plain transformers cannot load such a folder: it has no model.safetensors.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from .. import __version__
from .hub import VQVAE_FILENAMES, file_sha256, resolve_policy
from .quantize import PrecisionError, check_precision, quantize_model, resolve_precision, state_dict_to_save

METADATA_FILE = "ar3d_quantization.json"
WEIGHTS_FILE = "model.ar3d-8bit.safetensors"
FORMAT = "ar3d-8bit-weights"
FORMAT_VERSION = 1
SCHEME = "per-output-channel"  # one fp32 scale per output row, symmetric (quantize.quantize_weight)
# The source's policy weights: replaced by WEIGHTS_FILE, not copied. (VQ-VAE files are copied.)
_WEIGHT_PATTERNS = ("model*.safetensors", "model.safetensors.index.json",
                    "pytorch_model*.bin", "pytorch_model.bin.index.json")  # fmt: skip
_SKIP_DIRS = ("adapter", ".cache", ".git")  # a LoRA adapter for the bf16 base is of no use here


class QuantizedFolderError(PrecisionError):
    """A pre-quantized folder cannot be written or run as asked."""


def read_metadata(path: str | os.PathLike | None) -> dict | None:
    """The folder's quantization record, or None when it is not a pre-quantized folder."""
    if path is None or not (Path(path) / METADATA_FILE).is_file():
        return None
    try:
        meta = json.loads((Path(path) / METADATA_FILE).read_text())
    except (OSError, ValueError) as e:
        raise QuantizedFolderError(f"cannot read '{Path(path) / METADATA_FILE}' ({e}); "
                                   "write the folder again with `ar3d quantize`") from None  # fmt: skip
    if meta.get("format") != FORMAT or meta.get("precision") not in ("fp8", "int8"):
        raise QuantizedFolderError(f"'{Path(path) / METADATA_FILE}' is not an ar3d 8-bit record; "
                                   "write the folder again with `ar3d quantize`")  # fmt: skip
    return meta


def run_precision(asked: str | None, meta: dict, path: Path, device) -> str:
    """The precision a pre-quantized folder runs in: its own, unless another one is asked for
    (`asked`: --precision, else $AR3D_PRECISION, else None), which is refused naming the fix.
    Checked against the device like --precision is (no weights read yet)."""
    stored = meta["precision"]
    source = meta.get("source", {}).get("model") or "the full-precision source model"
    if asked and resolve_precision(asked) != stored:
        want = resolve_precision(asked)
        if want == "default":
            fix = f"load its source, '{source}', for the default precision"
        else:
            fix = f"write a {want} copy with `ar3d quantize {source} --precision {want} -o OUT`"
        raise QuantizedFolderError(f"'{path}' holds {stored} weights (written by `ar3d quantize`), so it cannot run "
                                   f"as {asked}: leave --precision and AR3D_PRECISION unset to run it in {stored}, or {fix}")  # fmt: skip
    try:
        check_precision(stored, device)
    except PrecisionError as e:
        if torch.device(device).type != "cuda":
            raise QuantizedFolderError(f"'{path}' holds {stored} weights (written by `ar3d quantize`), which run on a CUDA "
                                       f"GPU only; on {torch.device(device).type} load its source, '{source}', instead "
                                       "(the default precision)") from None  # fmt: skip
        raise QuantizedFolderError(f"'{path}' holds {stored} weights (written by `ar3d quantize`) that cannot run on this "
                                   f"GPU ({e}); write an int8 copy with `ar3d quantize {source} --precision int8 -o OUT`, "
                                   f"or load the source '{source}'") from None  # fmt: skip
    return stored


def effective_precision(path: str | os.PathLike | None, precision: str | None) -> str:
    """The precision a policy folder runs in: a pre-quantized folder's own, else `precision`
    resolved as ``--precision`` is (``Policy.load`` refuses a conflicting request)."""
    meta = read_metadata(path)
    return meta["precision"] if meta is not None else resolve_precision(precision)


def describe(path: str | os.PathLike) -> str:
    """One line for `ar3d info`: how the weights of a local policy folder are stored."""
    path = Path(path)
    try:
        meta = read_metadata(path)
    except QuantizedFolderError as e:
        return f"unknown ({e})"
    if meta is not None:
        src = meta.get("source", {})
        sha = (src.get("sha256") or "")[:12]
        needs = "a CUDA GPU with compute capability 8.9+" if meta["precision"] == "fp8" else "a CUDA GPU"
        return (f"{meta['precision']} (pre-quantized by ar3d {meta.get('ar3d_version', '?')}: {meta.get('scheme')} scales, "
                f"{len(meta.get('modules', []))} layers; from {src.get('model', '?')} sha256 {sha}…; runs on {needs})")  # fmt: skip
    try:
        config = json.loads((path / "config.json").read_text())
        dtype = config.get("dtype") or config.get("torch_dtype") or "float32"  # torch_dtype: transformers 4.x
    except (OSError, ValueError):
        return "unknown (no readable config.json)"
    return f"default (weights stored in {dtype}; --precision fp8|int8 quantizes them at load on a GPU)"


def model_class(model_type: str | None):
    from transformers import AutoModelForCausalLM, Qwen2_5_VLForConditionalGeneration

    return Qwen2_5_VLForConditionalGeneration if model_type == "qwen2_5_vl" else AutoModelForCausalLM


# --- writing ------------------------------------------------------------------------------------
def write_quantized(model: str | os.PathLike | None, out: str | os.PathLike, precision: str, *, force: bool = False,
                    progress=None) -> dict:  # fmt: skip
    """Quantize the policy `model` (folder or Hugging Face id) on the CPU into the folder `out`;
    the metadata written. The folder appears whole or not at all (written beside it, then renamed);
    `force` replaces an existing `out`. `progress` wraps the list of blocks quantized (tqdm)."""
    from safetensors.torch import save_file

    precision = resolve_precision(precision)
    if precision == "default":
        raise QuantizedFolderError("ar3d quantize writes 8-bit weights: choose --precision fp8 or int8")
    src = resolve_policy(model).resolve()
    out = Path(out).expanduser().resolve()
    if (already := read_metadata(src)) is not None:
        raise QuantizedFolderError(f"'{src}' is already quantized ({already['precision']}); "
                                   "quantize its source model instead")  # fmt: skip
    if (src / "adapter_config.json").is_file():
        raise QuantizedFolderError(f"'{src}' is a LoRA adapter: 8-bit weights are for inference: merge the LoRA adapter "
                                   "into the model first (the trainer's export does: export_policy(merge_lora=True))")  # fmt: skip
    if out == src or src in out.parents or out in src.parents:
        raise QuantizedFolderError(f"the output '{out}' overlaps the source model '{src}': choose a folder outside it")
    if out.exists() and not force:
        raise QuantizedFolderError(f"'{out}' already exists: pass --force to replace it, or choose another -o folder")
    if out.exists() and not (out / METADATA_FILE).is_file() and any(out.iterdir()):
        raise QuantizedFolderError(f"'{out}' exists and is not a pre-quantized model folder; --force replaces only those. "
                                   "Choose another -o folder")  # fmt: skip

    mclass = model_class(json.loads((src / "config.json").read_text()).get("model_type"))
    # The stored dtype (bf16 checkpoints stay bf16): the scales are then those a GPU load computes.
    net = mclass.from_pretrained(src, dtype="auto").eval()
    names = quantize_model(net, precision, progress=progress)  # refuses LoRA-wrapped models too
    tensors = state_dict_to_save(net)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "precision": precision,
        "dtype": {"fp8": "float8_e4m3fn", "int8": "int8"}[precision],
        "scheme": SCHEME, "scale_dtype": "float32", "weights": WEIGHTS_FILE,
        "other_dtype": str(net.dtype).removeprefix("torch."), "modules": names,
        "source": {"model": str(model) if model and not Path(model).expanduser().exists() else str(src),  # an id, or the path
                   "path": str(src), **_weights_identity(src)},
        "ar3d_version": __version__, "torch": torch.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(src, tmp, ignore=_not_copied, symlinks=False)  # HF cache files are links: copy contents
        save_file(tensors, tmp / WEIGHTS_FILE, metadata={"format": FORMAT, "precision": precision, "scheme": SCHEME})
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=1))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _not_copied(folder: str, names: list[str]) -> set[str]:
    skip = {n for n in names if n in _SKIP_DIRS or n == METADATA_FILE}
    for pattern in _WEIGHT_PATTERNS:
        skip |= {n for n in names if Path(n).match(pattern) and n not in VQVAE_FILENAMES}
    return skip


def _weights_identity(src: Path) -> dict:
    """sha256 of each source weight file and of the list of them: what the copy was made from."""
    files = {f.name: file_sha256(f)
             for f in sorted(p for pat in _WEIGHT_PATTERNS for p in src.glob(pat) if p.name not in VQVAE_FILENAMES)}  # fmt: skip
    combined = hashlib.sha256("".join(f"{n}\0{d}\n" for n, d in sorted(files.items())).encode()).hexdigest()
    return {"sha256": combined, "files": files}


# --- loading ------------------------------------------------------------------------------------
@contextmanager
def _parameters_on_meta():
    """Build a model with its parameters on the meta device (no memory, no init) and its buffers
    real: the rotary tables are computed at construction and are not in any checkpoint. (As
    accelerate's ``init_empty_weights(include_buffers=False)``; accelerate is a training extra.)"""
    register = torch.nn.Module.register_parameter

    def on_meta(module, name, param):
        register(module, name, param)
        if param is not None:
            p = module._parameters[name]
            module._parameters[name] = type(p)(p.to("meta"), requires_grad=p.requires_grad)

    torch.nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = register


def load_quantized_model(path: str | os.PathLike, device="cpu", dtype: torch.dtype = torch.float32):
    """The model of a pre-quantized folder, its 8-bit weights read as stored (no device check:
    `Policy.load` does that; on a CPU the modules compute with dequantized weights)."""
    from safetensors import safe_open
    from transformers import AutoConfig, GenerationConfig

    path = Path(path)
    meta = read_metadata(path)
    if meta is None:
        raise QuantizedFolderError(f"'{path}' is not a pre-quantized folder (no {METADATA_FILE}); "
                                   "write one with `ar3d quantize`")  # fmt: skip
    weights = path / meta.get("weights", WEIGHTS_FILE)
    if not weights.is_file():
        raise QuantizedFolderError(f"'{weights}' is missing: the folder is incomplete; "
                                   "write it again with `ar3d quantize`")  # fmt: skip
    config = AutoConfig.from_pretrained(path)
    mclass = model_class(config.model_type)
    with _parameters_on_meta():
        model = mclass._from_config(config, dtype=dtype)
    used: set[str] = set()
    with safe_open(str(weights), framework="pt", device=str(torch.device(device))) as f:
        keys = set(f.keys())

        def stored(key):
            if key not in keys:
                return None
            used.add(key)
            return f.get_tensor(key)

        quantize_model(model, meta["precision"], stored=stored)
        rest = {k: _cast(f.get_tensor(k), dtype) for k in sorted(keys - used)}
    missing, unexpected = model.load_state_dict(rest, strict=False, assign=True)
    still_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if unexpected or still_meta:
        what = f"unexpected tensors {unexpected[:3]}" if unexpected else f"no weights for {still_meta[:3]}"
        raise QuantizedFolderError(f"'{weights}' does not match the folder's config.json ({what}); "
                                   "write it again with `ar3d quantize`")  # fmt: skip
    if (path / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(path)
    model.config._name_or_path = str(path)
    return model.to(device).eval()


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.to(dtype) if t.is_floating_point() else t
