"""`ar3d info`: versions, devices, settings and the models found."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from .. import __version__


def cmd_info(args) -> int:
    import os

    import torch
    import transformers

    from ..core.threads import describe as describe_threads
    from ..core.hub import DEMO_MODEL, DEFAULT_VQVAE, bundled_vqvae, cached_models, data_dir, default_policy, offline
    from ..core.prequantized import describe as describe_precision

    model = getattr(args, "model", None) or default_policy()
    model_dir = Path(model).expanduser()
    vqvae = os.environ.get("AR3D_VQVAE") or bundled_vqvae(model_dir if model_dir.is_dir() else None) or DEFAULT_VQVAE
    found = cached_models()
    if (DEMO_MODEL / "config.json").is_file():
        size = sum(f.stat().st_size for f in DEMO_MODEL.rglob("*") if f.is_file())
        found.insert(0, {"id": "demo (bundled with ar3d)", "path": str(DEMO_MODEL), "bytes": size})
    info = {
        "ar3d": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "devices": ["cpu"] + [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())],
        "bpy": _bpy_version(),
        "default_model": model,
        # how its weights are stored: 8-bit when written by `ar3d quantize`
        "model_precision": describe_precision(model_dir) if (model_dir / "config.json").is_file() else "unknown (not a local folder)",
        "default_vqvae": str(vqvae),
        "hf_hub_offline": offline(),
        "data_dir": str(data_dir()),
        "models_found": found,
        "threads": describe_threads(),
    }
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        for k, v in info.items():
            if k == "models_found":
                print(f"{k}:" + ("" if v else " none"))
                for m in v:
                    print(f"  {m['id']}  {m['bytes'] / 1e9:.3f} GB  {m['path']}")
            elif k in ("default_model", "default_vqvae"):
                print(f"{k}: {_describe(v, DEMO_MODEL)}")
            else:
                print(f"{k}: {v}")
    return 0


def _bpy_version():
    import importlib.util

    return "installed (not imported)" if importlib.util.find_spec("bpy") else "not installed"


def _describe(spec: str, demo: Path) -> str:
    """The setting as it is, marked when it is (inside) the bundled demo model."""
    path = Path(spec).expanduser()
    if path.exists() and (path.resolve() == demo or demo in path.resolve().parents):
        return f"{spec} (the bundled demo model)"
    return spec
