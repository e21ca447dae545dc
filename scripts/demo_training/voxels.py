"""Occupancy grids as torch tensors on any device: unpacking the datasets' bit-packed grids, the
solid the mesher closes and fills, and IoU; the VQ-VAE's training and held-out metrics use them."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .data import RES

_SHIFTS: dict = {}


def unpack(packed: torch.Tensor) -> torch.Tensor:
    """uint8 [B, R³/8] (np.packbits, big-endian bits) on any device -> float [B, 1, R, R, R]."""
    dev = packed.device
    if dev not in _SHIFTS:
        _SHIFTS[dev] = torch.arange(7, -1, -1, dtype=torch.uint8, device=dev)
    bits = (packed.unsqueeze(-1) >> _SHIFTS[dev]) & 1
    return bits.reshape(packed.shape[0], 1, RES, RES, RES).float()


def fill_holes(shell: torch.Tensor, max_iter: int = 512) -> torch.Tensor:
    """scipy.ndimage.binary_fill_holes (6-connected background) on the GPU: bool [B,1,R,R,R]."""
    bg = ~shell
    reach = torch.zeros_like(bg)
    reach[..., 0, :, :] = bg[..., 0, :, :]
    reach[..., -1, :, :] = bg[..., -1, :, :]
    reach[..., :, 0, :] |= bg[..., :, 0, :]
    reach[..., :, -1, :] |= bg[..., :, -1, :]
    reach[..., :, :, 0] |= bg[..., :, :, 0]
    reach[..., :, :, -1] |= bg[..., :, :, -1]
    for i in range(max_iter):
        r = reach.clone()
        r[..., 1:, :, :] |= reach[..., :-1, :, :]
        r[..., :-1, :, :] |= reach[..., 1:, :, :]
        r[..., :, 1:, :] |= reach[..., :, :-1, :]
        r[..., :, :-1, :] |= reach[..., :, 1:, :]
        r[..., :, :, 1:] |= reach[..., :, :, :-1]
        r[..., :, :, :-1] |= reach[..., :, :, 1:]
        r &= bg
        if i % 8 == 7 and torch.equal(r, reach):
            break
        reach = r
    return ~reach


def mesh_solid(shell: torch.Tensor, closing: int = 1) -> torch.Tensor:
    """The solid that core.mesh.occupancy_to_mesh meshes (default MeshConfig): a 3x3x3 binary
    closing (``closing`` iterations) seals pinholes, then holes are filled; bool [B,1,R,R,R]."""
    pad = closing + 1
    x = F.pad(shell.float(), (pad,) * 6)
    for _ in range(closing):
        x = F.max_pool3d(x, 3, 1, 1)
    for _ in range(closing):
        x = 1 - F.max_pool3d(1 - x, 3, 1, 1)
    solid = fill_holes(x > 0.5)
    r = shell.shape[-1]
    return solid[..., pad : pad + r, pad : pad + r, pad : pad + r] | shell


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample IoU of bool [B, ...] grids (1 where both are empty)."""
    a, b = a.flatten(1), b.flatten(1)
    inter = (a & b).sum(1).float()
    union = (a | b).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
