"""ar3d.core: prompt → plan + mesh tokens → occupancy → mesh. Needs torch, never bpy.

Importing the package itself is light (no torch): the render workers import ``core.errors`` and
``core.mesh`` and must stay torch-free.
"""

# OpenMP reads its wait policy once, when torch loads it: set the passive one first (threads.py).
from .threads import prepare_environment as _prepare_threads

_prepare_threads()

# transformers (image processors) and open_clip import torchvision when it is installed; a CUDA
# torchvision beside a CPU torch would break those imports. The hook fixes that when torchvision
# is first imported (see torchvision_compat.py); installing it imports nothing heavy.
from .torchvision_compat import install_import_hook as _install_torchvision_hook

_install_torchvision_hook()
