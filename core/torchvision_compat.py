"""Let torchvision import on a CPU torch that was installed next to a CUDA build of torchvision.

PyPI's Linux torchvision wheels are CUDA builds; beside a ``+cpu`` torch their compiled ops
(``torchvision/_C.so``) fail to load, and torchvision 0.2x then dies at import while registering
fake kernels for those missing ops. transformers' image processors, open_clip and timm need only
torchvision's pure-Python parts, so when — and only when — the compiled ops are absent we
declare their schemas so the import succeeds. Calling such an op (nms, roi_align…) still
raises, as it would have. With a matching torchvision this module does nothing.

The cause is fixed by installing matching CPU builds of torch and torchvision from PyTorch's
CPU index (``scripts/setup_env.sh`` does when it can reach it). Where it cannot, the set-up
installs this file into the environment's site-packages with a ``.pth`` line
(``python -m ar3d.core.fix_torchvision --install``), so *every* importer of torchvision
(``python -c "import torchvision"``, timm under ``accelerate launch``…) gets the fix, not only
ar3d. The hook costs nothing until torchvision is imported. This module is self-contained
(standard library; torch imported only when torchvision is) so it can be copied there.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import sys

# Schemas of torchvision's compiled operators (torchvision/csrc/ops/*.cpp, 0.2x).
_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "box_iou_rotated": "box_iou_rotated(Tensor boxes1, Tensor boxes2) -> Tensor",
    "deform_conv2d": (
        "deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, "
        "SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, "
        "SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) -> Tensor"
    ),
    "_deform_conv2d_backward": (
        "_deform_conv2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor offset, "
        "Tensor mask, Tensor bias, SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, "
        "SymInt dilation_h, SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask)"
        " -> (Tensor, Tensor, Tensor, Tensor, Tensor)"
    ),
    "roi_align": (
        "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
        "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor"
    ),
    "_roi_align_backward": (
        "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height,"
        " SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, "
        "int sampling_ratio, bool aligned) -> Tensor"
    ),
    "qroi_align": (
        "qroi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
        "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor"
    ),
    "roi_pool": (
        "roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
        "SymInt pooled_width) -> (Tensor, Tensor)"
    ),
    "_roi_pool_backward": (
        "_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale, "
        "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, "
        "SymInt height, SymInt width) -> Tensor"
    ),
    "ps_roi_align": (
        "ps_roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
        "SymInt pooled_width, int sampling_ratio) -> (Tensor, Tensor)"
    ),
    "_ps_roi_align_backward": (
        "_ps_roi_align_backward(Tensor grad, Tensor rois, Tensor channel_mapping, "
        "float spatial_scale, SymInt pooled_height, SymInt pooled_width, int sampling_ratio, "
        "SymInt batch_size, SymInt channels, SymInt height, SymInt width) -> Tensor"
    ),
    "ps_roi_pool": (
        "ps_roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
        "SymInt pooled_width) -> (Tensor, Tensor)"
    ),
    "_ps_roi_pool_backward": (
        "_ps_roi_pool_backward(Tensor grad, Tensor rois, Tensor channel_mapping, "
        "float spatial_scale, SymInt pooled_height, SymInt pooled_width, SymInt batch_size, "
        "SymInt channels, SymInt height, SymInt width) -> Tensor"
    ),
}
_library = None  # kept alive: the schemas live as long as this Library object


def _compiled_ops_load() -> bool:
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # no torchvision: open_clip's own import error is the clearer one
    import glob
    import os

    for folder in spec.submodule_search_locations:
        for so in glob.glob(os.path.join(folder, "_C*.so")) + glob.glob(os.path.join(folder, "_C*.pyd")):
            try:
                torch.ops.load_library(so)
                return True
            except OSError:
                return False
    return True


def ensure_torchvision_importable() -> None:
    """Declare torchvision's op schemas if its compiled library cannot load (see module doc)."""
    global _library
    import torch

    if _library is not None or hasattr(torch.ops.torchvision, "nms") or _compiled_ops_load():
        return
    if _library is not None or hasattr(torch.ops.torchvision, "nms"):
        return  # declared meanwhile: finding torchvision ran an import hook (ar3d.core's or another)
    logging.getLogger(__name__).info(
        "torchvision's compiled ops do not match this torch build (a CUDA torchvision next to a "
        "CPU torch); ar3d declares their schemas so transformers and open_clip can import. "
        "torchvision.ops kernels (nms, roi_align…) are unavailable; install the torchvision built "
        "for your torch to have them."
    )
    _library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS.values():
        _library.define(schema)


class _ImportHook(importlib.abc.MetaPathFinder):
    """Runs :func:`ensure_torchvision_importable` just before the first import of torchvision."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            uninstall_import_hook()
            try:
                ensure_torchvision_importable()
            except Exception:  # no torch, or a torch this does not know: torchvision's own error is clearer
                pass
        return None  # the ordinary finders import it


def install_import_hook() -> None:
    """Fix torchvision's import lazily: at once if it is already imported, else when it is."""
    if any(isinstance(f, _ImportHook) for f in sys.meta_path):
        return
    if "torchvision" in sys.modules:
        return
    sys.meta_path.insert(0, _ImportHook())


def uninstall_import_hook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _ImportHook)]


PTH_NAME = "ar3d_torchvision_compat"


def install_pth(site_dir: str | None = None) -> list[str]:
    """Copy this module into ``site_dir`` (default: this interpreter's site-packages) with a
    ``.pth`` line that installs the import hook at every start of Python. Returns the files."""
    import os
    import shutil
    import sysconfig

    site_dir = site_dir or sysconfig.get_paths()["purelib"]
    module = os.path.join(site_dir, PTH_NAME + ".py")
    pth = os.path.join(site_dir, PTH_NAME + ".pth")
    shutil.copyfile(__file__, module)
    with open(pth, "w", encoding="utf-8") as f:
        f.write(f"import {PTH_NAME}; {PTH_NAME}.install_import_hook()\n")
    return [module, pth]


def torchvision_imports(python: str = sys.executable) -> bool:
    """Whether a plain ``import torchvision`` works in a fresh process of ``python``."""
    import subprocess

    return subprocess.run([python, "-c", "import torchvision"], capture_output=True).returncode == 0
