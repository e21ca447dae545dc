"""ar3d.core: prompt → plan + mesh tokens → occupancy → mesh. Needs torch, never bpy."""

# transformers (image processors) and open_clip import torchvision when it is installed; a CUDA
# torchvision beside a CPU torch would break those imports. See rewards/_torchvision_compat.py.
from .rewards._torchvision_compat import ensure_torchvision_importable as _ensure_torchvision

_ensure_torchvision()
