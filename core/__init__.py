"""ar3d.core: prompt → plan + mesh tokens → occupancy → mesh. Needs torch, never bpy.

Importing the package itself is light (no torch): the render workers import ``core.errors`` and
``core.mesh`` and must stay torch-free.
"""

import sys as _sys


class _TorchvisionGuard:
    """transformers (image processors) and open_clip import torchvision when it is installed; a
    CUDA torchvision beside a CPU torch would break those imports (see
    rewards/_torchvision_compat.py). Run that fix right before torchvision is first imported,
    not when ``ar3d.core`` is, so that importing ar3d.core does not import torch."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            _sys.meta_path[:] = [f for f in _sys.meta_path if f is not self]
            from .rewards._torchvision_compat import ensure_torchvision_importable

            ensure_torchvision_importable()
        return None


if "torchvision" not in _sys.modules and not any(isinstance(f, _TorchvisionGuard) for f in _sys.meta_path):
    _sys.meta_path.insert(0, _TorchvisionGuard())
