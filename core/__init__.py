"""ar3d.core: prompt → plan + mesh tokens → occupancy → mesh. Needs torch, never bpy."""

# OpenMP reads its wait policy once, when torch loads it: set the passive one first (threads.py).
from .threads import prepare_environment as _prepare_threads

_prepare_threads()

# transformers (image processors) and open_clip import torchvision when it is installed; a CUDA
# torchvision beside a CPU torch would break those imports. See rewards/_torchvision_compat.py.
from .rewards._torchvision_compat import ensure_torchvision_importable as _ensure_torchvision

_ensure_torchvision()
