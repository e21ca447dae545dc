"""The field's text-to-3D metrics, on features (see ``features``), in float64 numpy.

* **CLIP score** of a sample: ``mean over its views of max(100 · cos(image, text), 0)`` — the
  customary clamp at 0 (torchmetrics' CLIPScore) and the mean over the rendered ring.
* **KD** (kernel distance, "KID"): the unbiased estimator of MMD² with the polynomial kernel
  ``k(x, y) = (x·y / d + 1)³``, averaged over ``subsets`` random subsets of ``subset_size``
  features drawn without replacement from each set; reported as mean ± std over the subsets.
  The subset size shrinks to the smaller set when fewer features exist. Being unbiased it can be
  slightly negative when the two sets come from one distribution.
* **FD** (Fréchet distance, "FID"): ``‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½)`` with unbiased
  covariances, computed exactly without scipy's ``sqrtm`` (which can go complex or fail on
  singular products): from features, in sample space when there are fewer features than
  dimensions (a nuclear norm, see ``frechet_distance``), else from the eigenvalues of the PSD
  matrix ``Σ₁^½ Σ₂ Σ₁^½`` — exact for singular covariances too, so (as in pytorch-fid, whose
  ``scipy.linalg.sqrtm`` route it matches) ``eps·I`` is added to the covariances inside the root
  only when the root cannot be computed, never to the traces.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def clip_score(image_features: np.ndarray, text_feature: np.ndarray) -> tuple[float, list[float]]:
    """One sample: (mean over views of max(100·cos, 0), the per-view values)."""
    img = _unit(np.asarray(image_features, np.float64).reshape(len(image_features), -1))
    txt = _unit(np.asarray(text_feature, np.float64).reshape(1, -1))[0]
    if img.shape[1] != txt.shape[0]:
        raise ValueError(f"image features have {img.shape[1]} dims, the text feature {txt.shape[0]}")
    per_view = np.maximum(100.0 * img @ txt, 0.0)
    return float(per_view.mean()), [float(v) for v in per_view]


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-12)


_FULL_KERNEL_MAX = 8000  # features in both sets together: a float64 kernel matrix of at most 512 MB


@dataclass
class KDResult:
    mean: float
    std: float
    subset_size: int
    subsets: int
    n_a: int
    n_b: int

    def to_dict(self) -> dict:
        return asdict(self)


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """k(x, y) = (x·y / d + coef0)^degree, d the feature size (gamma = 1/d)."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Unbiased MMD² from the kernel matrices of m + m samples (diagonals of k_xx, k_yy excluded)."""
    m = k_xx.shape[0]
    if m < 2 or k_yy.shape[0] != m or k_xy.shape != (m, m):
        raise ValueError("mmd2_unbiased needs m x m kernel matrices with m >= 2")
    xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    yy = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    xy = k_xy.sum() / (m * m)
    return float(xx + yy - 2.0 * xy)


def kernel_distance(a: np.ndarray, b: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0,
                    degree: int = 3, coef0: float = 1.0) -> KDResult:  # fmt: skip
    """KD between feature sets ``a`` [n_a, d] and ``b`` [n_b, d] (see the module docstring)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be [n, d] with the same d, got {a.shape} and {b.shape}")
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    m = min(int(subset_size), len(a), len(b))
    if m < 2:
        raise ValueError(f"kernel distance needs at least 2 features in each set, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    # One kernel matrix over both sets when it fits (subsets then only index it): 100 subsets of
    # 1000 would otherwise repeat 300 matrix products of 1000 x 2048 x 1000.
    full = len(a) + len(b) <= _FULL_KERNEL_MAX
    if full:
        both = np.concatenate([a, b])
        k = polynomial_kernel(both, both, degree, coef0)
    values = []
    for _ in range(subsets):
        ia = rng.choice(len(a), m, replace=False)
        ib = rng.choice(len(b), m, replace=False)
        if full:
            jb = ib + len(a)
            values.append(mmd2_unbiased(k[np.ix_(ia, ia)], k[np.ix_(jb, jb)], k[np.ix_(ia, jb)]))
        else:
            x, y = a[ia], b[ib]
            values.append(mmd2_unbiased(polynomial_kernel(x, x, degree, coef0), polynomial_kernel(y, y, degree, coef0),
                                        polynomial_kernel(x, y, degree, coef0)))  # fmt: skip
    v = np.asarray(values)
    return KDResult(float(v.mean()), float(v.std()), m, int(subsets), len(a), len(b))


def feature_statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of features [n, d] (n >= 2)."""
    x = _at_least_two(x)
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _at_least_two(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"Fréchet distance needs at least 2 features [n, d], got shape {x.shape}")
    return x


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """``Tr((Σ₁Σ₂)^½)``: the sum of the square roots of the eigenvalues of the PSD matrix
    ``Σ₁^½ Σ₂ Σ₁^½`` (similar to ``Σ₁Σ₂``); NaN when it cannot be computed."""
    try:
        root1 = _sqrt_psd(s1)
        middle = root1 @ s2 @ root1
        w = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    except np.linalg.LinAlgError:
        return float("nan")
    return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """FD from means and covariances, singular ones included (see ``_trace_sqrt_product``).

    As pytorch-fid does, ``eps·I`` is added to both covariances only when the square root fails
    (its result is not finite), and only inside the root: the traces use the covariances as given.
    Regularising every singular pair instead moved FD by 0.5 (1.7e-4 relative) on 300 vs 200
    Inception features."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError("means and covariances of the two sets must have matching shapes")
    tr_sqrt = _trace_sqrt_product(s1, s2)
    if not np.isfinite(tr_sqrt) and eps > 0:
        offset = eps * np.eye(mu1.size)
        tr_sqrt = _trace_sqrt_product(s1 + offset, s2 + offset)
    if not np.isfinite(tr_sqrt):
        raise ValueError("Fréchet distance: the square root of the covariance product is not finite (non-finite features?)")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FD between feature sets ``a`` [n_a, d] and ``b`` [n_b, d], exactly.

    With fewer features than dimensions (the usual case for renders of a benchmark: 1,680 views
    of 2,048-d Inception features) the covariances are singular; instead of regularising them,
    the trace is taken in sample space: with ``Aᵢ`` the centred features over ``√(nᵢ−1)``,
    ``Σᵢ = AᵢᵀAᵢ`` and the non-zero eigenvalues of ``Σ₁Σ₂`` are the squared singular values of
    ``A₁A₂ᵀ``, so ``Tr((Σ₁Σ₂)^½)`` is that [n₁, n₂] matrix's nuclear norm. Otherwise the
    covariance route of ``frechet_distance_from_stats`` (no eps needed: full rank)."""
    a, b = _at_least_two(a), _at_least_two(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must have the same d, got {a.shape} and {b.shape}")
    if min(len(a), len(b)) > a.shape[1]:
        mu1, s1 = feature_statistics(a)
        mu2, s2 = feature_statistics(b)
        return frechet_distance_from_stats(mu1, s1, mu2, s2, eps=0.0)
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    a1 = (a - mu1) / np.sqrt(len(a) - 1)
    a2 = (b - mu2) / np.sqrt(len(b) - 1)
    tr_sqrt = float(np.linalg.svd(a1 @ a2.T, compute_uv=False).sum())
    diff = mu1 - mu2
    return float(diff @ diff + (a1 * a1).sum() + (a2 * a2).sum() - 2.0 * tr_sqrt)


def mean_std(values) -> tuple[float | None, float | None, int]:
    """Mean, population std and count of the non-missing values (None when there are none)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if len(v) == 0:
        return None, None, 0
    return float(v.mean()), float(v.std()), int(len(v))
