"""The VQ-VAE's training quantiser: an EMA (online k-means) codebook with k-means initialisation
and dead-code restarts, which keeps far more codes alive than a codebook trained by the loss."""

from __future__ import annotations

import torch


class EMAQuantizer:
    """Nearest-code quantiser whose codebook (the model's ``vq.embeddings.weight``) follows an
    exponential moving average of the encoder vectors assigned to each code (k-means online).
    Codes that stop being used are restarted on badly represented encoder vectors."""

    def __init__(self, weight: torch.Tensor, decay: float = 0.99, eps: float = 1e-5):
        self.weight = weight  # the Codebook's parameter, updated in place (not by the optimiser)
        self.decay, self.eps = decay, eps
        k, d = weight.shape
        self.count = torch.ones(k, device=weight.device)
        self.sum = weight.detach().clone()
        self.usage = torch.zeros(k, device=weight.device)  # EMA of assignments per step

    def nearest(self, z: torch.Tensor):
        e = self.weight.detach()
        d = (e * e).sum(1)[None, :] - 2.0 * (z @ e.t())  # same rule as Codebook.nearest
        idx = d.argmin(1)
        return idx, e[idx]

    @torch.no_grad()
    def init_kmeans(self, z: torch.Tensor, iters: int = 20, seed: int = 0) -> dict:
        """k-means on encoder vectors z [N, D]; empty clusters are re-seeded far from their
        nearest centre (k-means++ style), which matters because empty space dominates."""
        g = torch.Generator(device=z.device).manual_seed(seed)
        k = self.weight.shape[0]
        c = z[torch.randint(len(z), (k,), generator=g, device=z.device)].clone()
        for _ in range(iters):
            d = (c * c).sum(1)[None, :] - 2.0 * (z @ c.t())
            idx = d.argmin(1)
            cnt = torch.bincount(idx, minlength=k).float()
            s = torch.zeros_like(c).index_add_(0, idx, z)
            alive = cnt > 0
            c[alive] = s[alive] / cnt[alive, None]
            dead = int((~alive).sum())
            if dead:
                err = (d.gather(1, idx[:, None])[:, 0] + (z * z).sum(1)).clamp(min=0)
                pick = torch.multinomial(err + 1e-12, dead, replacement=False, generator=g)
                c[~alive] = z[pick]
        d = (c * c).sum(1)[None, :] - 2.0 * (z @ c.t())
        idx = d.argmin(1)
        cnt = torch.bincount(idx, minlength=k).float()
        self.weight.data.copy_(c)
        self.count = cnt.clamp(min=1.0)
        self.sum = c * self.count[:, None]
        return {"kmeans_vectors": len(z), "kmeans_used": int((cnt > 0).sum())}

    @torch.no_grad()
    def update(self, z: torch.Tensor, idx: torch.Tensor) -> None:
        k = self.weight.shape[0]
        cnt = torch.bincount(idx, minlength=k).float()
        s = torch.zeros_like(self.sum).index_add_(0, idx, z)
        self.count.mul_(self.decay).add_(cnt, alpha=1 - self.decay)
        self.sum.mul_(self.decay).add_(s, alpha=1 - self.decay)
        self.usage.mul_(0.99).add_(cnt, alpha=0.01)
        n = self.count.sum()
        smoothed = (self.count + self.eps) / (n + k * self.eps) * n
        self.weight.data.copy_(self.sum / smoothed[:, None])

    @torch.no_grad()
    def restart_dead(self, z: torch.Tensor, q: torch.Tensor, threshold: float, g) -> int:
        dead = (self.usage < threshold).nonzero()[:, 0]
        if len(dead) == 0:
            return 0
        err = ((z - q) ** 2).sum(1)
        pick = torch.multinomial(err + 1e-12, len(dead), replacement=len(dead) > len(z), generator=g)
        new = z[pick]
        self.weight.data[dead] = new
        self.sum[dead] = new
        self.count[dead] = 1.0
        self.usage[dead] = threshold * 4
        return len(dead)
