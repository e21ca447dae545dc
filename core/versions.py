"""The oldest library versions ar3d can run with, checked where a too-old one would fail obscurely.

pyproject.toml declares the same bounds (a test keeps them equal). transformers: 4.x cannot
load ar3d's checkpoints: their tokenizers are saved as ``TokenizersBackend`` (transformers 5)
and 4.57 fails with "Tokenizer class TokenizersBackend does not exist".
"""

from __future__ import annotations

import re

from .errors import Ar3dError

MINIMUM = {"transformers": "5.0"}


class DependencyError(Ar3dError):
    """An installed library is older than ar3d needs."""


def _release(version: str) -> tuple[int, ...]:
    match = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(p) for p in match.group(0).split(".")) if match else ()


def require(package: str, installed: str | None = None) -> None:
    """Raise a one-line DependencyError naming the upgrade when ``package`` is too old."""
    if installed is None:
        import importlib

        installed = getattr(importlib.import_module(package), "__version__", "0")
    need = MINIMUM[package]
    if _release(installed) < _release(need):
        raise DependencyError(
            f"ar3d needs {package} >= {need}, but {installed} is installed (it cannot load ar3d's "
            f"checkpoints); upgrade it: pip install -U '{package}>={need}'"
        )
