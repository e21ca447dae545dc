"""The FID Inception-v3: the network FID and KID are defined on.

FID (Heusel et al.) and KID were defined on TensorFlow's 2015-12-05 Inception graph, and
pytorch-fid, torchmetrics, torch-fidelity and clean-fid all compute their features with a port
of it, so published FID/KD numbers come from this network and its weights, not from
torchvision's ImageNet Inception-v3. The layout is torchvision's ``Inception3`` with 1008
classes; what differs is the pooling branch of the mixed blocks, where the TF graph

* averages over the valid pixels only (``count_include_pad=False``) in Mixed_5b–5d (block A),
  Mixed_6b–6e (block C) and Mixed_7b (block E);
* max-pools instead of averaging in Mixed_7c (the last block E).

The weights are the TF ones as pytorch-fid converted them, ``pt_inception-2015-12-05-6726825d.pth``
(torchvision's key names; by the torch hub convention ``6726825d`` starts the file's sha256).
The features are the 2048-d global average pool of Mixed_7c, for inputs scaled to [-1, 1].
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

FID_INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_INCEPTION_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_INCEPTION_FILE
FID_INCEPTION_SHA256_PREFIX = "6726825d"


def _torchvision_inception():
    from ..core.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    from torchvision.models import inception

    return inception


def _valid_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """TF's 3×3 'SAME' average pool: border means over the pixels inside the image only."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _max_pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


@functools.lru_cache(maxsize=1)
def _blocks():
    """The three FID block classes, built on torchvision's (imported lazily: torchvision is optional)."""
    inception = _torchvision_inception()

    class FIDInceptionA(inception.InceptionA):
        """Block A (Mixed_5b–5d) with TF's average pool."""

        def _forward(self, x):
            b5 = self.branch5x5_2(self.branch5x5_1(x))
            b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            return [self.branch1x1(x), b5, b3, self.branch_pool(_valid_avg_pool(x))]

    class FIDInceptionC(inception.InceptionC):
        """Block C (Mixed_6b–6e) with TF's average pool."""

        def _forward(self, x):
            b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            d = x
            for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                         self.branch7x7dbl_5):  # fmt: skip
                d = conv(d)
            return [self.branch1x1(x), b7, d, self.branch_pool(_valid_avg_pool(x))]

    class FIDInceptionE(inception.InceptionE):
        """Block E; ``pool`` is TF's average pool in Mixed_7b and a max pool in Mixed_7c."""

        def __init__(self, in_channels: int, pool):
            super().__init__(in_channels)
            self.pool = pool

        def _forward(self, x):
            b3 = self.branch3x3_1(x)
            b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
            d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
            return [self.branch1x1(x), b3, d, self.branch_pool(self.pool(x))]

    return inception, FIDInceptionA, FIDInceptionC, FIDInceptionE


def build_fid_inception(state_dict: dict | None = None) -> nn.Module:
    """The FID Inception-v3 with the classifier replaced by identity (2048-d pool features).

    ``state_dict``: the weights (pytorch-fid's file holds the 1008-class ``fc`` too, loaded and
    then dropped); None leaves PyTorch's default initialisation (tests). Inputs in [-1, 1]."""
    inception, block_a, block_c, block_e = _blocks()
    net = inception.Inception3(num_classes=1008, aux_logits=False, transform_input=False, init_weights=False)
    net.Mixed_5b = block_a(192, pool_features=32)
    net.Mixed_5c = block_a(256, pool_features=64)
    net.Mixed_5d = block_a(288, pool_features=64)
    net.Mixed_6b = block_c(768, channels_7x7=128)
    net.Mixed_6c = block_c(768, channels_7x7=160)
    net.Mixed_6d = block_c(768, channels_7x7=160)
    net.Mixed_6e = block_c(768, channels_7x7=192)
    net.Mixed_7b = block_e(1280, _valid_avg_pool)
    net.Mixed_7c = block_e(2048, _max_pool)
    if state_dict is not None:
        net.load_state_dict(state_dict, strict=True)
    net.fc = nn.Identity()
    return net.eval()


def looks_like_torchvision_inception(state_dict: dict) -> bool:
    """torchvision's ImageNet weights: an auxiliary classifier and 1000 classes (FID's: neither)."""
    fc = state_dict.get("fc.weight")
    return any(k.startswith("AuxLogits.") for k in state_dict) or (fc is not None and fc.shape[0] == 1000)
