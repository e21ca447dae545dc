"""`ar3d info`: versions, devices, settings and the models found."""

from __future__ import annotations

import json
import platform

from .. import __version__


def cmd_info(args) -> int:
    import os

    import torch
    import transformers

    from ..core.hub import DEFAULT_VQVAE, cached_models, data_dir, default_policy, offline

    info = {
        "ar3d": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "devices": ["cpu"] + [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())],
        "bpy": _bpy_version(),
        "default_model": default_policy(),
        "default_vqvae": os.environ.get("AR3D_VQVAE") or DEFAULT_VQVAE,
        "hf_hub_offline": offline(),
        "data_dir": str(data_dir()),
        "models_found": cached_models(),
    }
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        for k, v in info.items():
            if k == "models_found":
                print(f"{k}:" + ("" if v else " none"))
                for m in v:
                    print(f"  {m['id']}  {m['bytes'] / 1e9:.2f} GB  {m['path']}")
            else:
                print(f"{k}: {v}")
    return 0


def _bpy_version():
    import importlib.util

    return "installed (not imported)" if importlib.util.find_spec("bpy") else "not installed"
