"""Mesh tokens: the 1024 VQ-VAE codes as `<mesh-start> <mesh{i}>… <mesh-end>` in the policy's vocabulary.

Ids are resolved from the tokenizer by string, never hard-coded: the reported ids
(`<mesh0>` = 151665 …) are unverified and a demo model has a different vocabulary. The only
assumption is that `<mesh0>`…`<mesh{K-1}>` occupy consecutive ids, which is how added tokens
are numbered; it is checked, because the constrained decoder relies on it.

Validation never repairs silently: `codes_from_ids(..., repair=True)` pads or truncates and
says so in the returned `Repair`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import Ar3dError

MESH_START = "<mesh-start>"
MESH_END = "<mesh-end>"
MESH_CODE = "<mesh{}>"
NUM_CODES = 8192
TOKENS_PER_MESH = 1024

_CODE_RE = re.compile(r"<mesh(\d+)>")


class MeshTokenError(Ar3dError, ValueError):
    """A mesh token sequence is malformed (count, range, or missing delimiters)."""


@dataclass(frozen=True)
class Repair:
    """What `repair=True` changed, so callers can report it instead of hiding it."""

    padded: int = 0
    truncated: int = 0
    added_start: bool = False
    added_end: bool = False

    def __bool__(self) -> bool:
        return bool(self.padded or self.truncated or self.added_start or self.added_end)

    def describe(self) -> str:
        parts = []
        if self.padded:
            parts.append(f"padded {self.padded} codes by repeating the last one")
        if self.truncated:
            parts.append(f"dropped {self.truncated} codes past {TOKENS_PER_MESH}")
        if self.added_start:
            parts.append(f"added missing {MESH_START}")
        if self.added_end:
            parts.append(f"added missing {MESH_END}")
        return "; ".join(parts) or "no repair"


@dataclass(frozen=True)
class MeshVocab:
    """Where the mesh tokens live in one tokenizer's vocabulary."""

    code_offset: int  # id of <mesh0>
    num_codes: int
    start_id: int
    end_id: int
    tokens_per_mesh: int = TOKENS_PER_MESH

    @classmethod
    def from_tokenizer(cls, tokenizer, num_codes: int | None = None) -> "MeshVocab":
        vocab = tokenizer.get_vocab()
        missing = [t for t in (MESH_START, MESH_END, MESH_CODE.format(0)) if t not in vocab]
        if missing:
            raise MeshTokenError(
                f"the tokenizer has no {', '.join(missing)} token(s): it is not a ShapeLLM-Omni / "
                "AR3D-R1 tokenizer. Point --model at a checkpoint with mesh tokens, or add them with "
                "ar3d.core.tokens.add_mesh_tokens(tokenizer)."
            )
        if num_codes is None:
            num_codes = 0
            while MESH_CODE.format(num_codes) in vocab:
                num_codes += 1
        offset = vocab[MESH_CODE.format(0)]
        last = MESH_CODE.format(num_codes - 1)
        if vocab.get(last) != offset + num_codes - 1:
            raise MeshTokenError(
                f"mesh code tokens are not consecutive ids ({MESH_CODE.format(0)}={offset}, "
                f"{last}={vocab.get(last)}); ar3d needs <mesh0>…<mesh{num_codes - 1}> as one block"
            )
        return cls(offset, num_codes, vocab[MESH_START], vocab[MESH_END])

    # --- id <-> code -------------------------------------------------------------------
    def is_code(self, ids):
        ids = np.asarray(ids)
        return (ids >= self.code_offset) & (ids < self.code_offset + self.num_codes)

    def ids_from_codes(self, codes: Sequence[int] | np.ndarray, delimiters: bool = True) -> list[int]:
        codes = self.check_codes(codes)
        ids = (codes + self.code_offset).tolist()
        return [self.start_id, *ids, self.end_id] if delimiters else ids

    def check_codes(self, codes) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.int64).reshape(-1)
        if codes.size != self.tokens_per_mesh:
            raise MeshTokenError(
                f"a mesh needs exactly {self.tokens_per_mesh} codes, got {codes.size}; "
                "pass repair=True to pad/truncate (and report it)"
            )
        bad = (codes < 0) | (codes >= self.num_codes)
        if bad.any():
            i = int(np.argmax(bad))
            raise MeshTokenError(
                f"code {int(codes[i])} at position {i} is outside the codebook [0, {self.num_codes}); "
                "the codes come from another VQ-VAE or are corrupt"
            )
        return codes

    def codes_from_ids(self, ids: Sequence[int], repair: bool = False) -> tuple[np.ndarray, Repair]:
        """Codes of the first mesh in `ids` (a completion); delimiters required unless repairing."""
        ids = list(map(int, ids))
        added_start = added_end = False
        if self.start_id in ids:
            ids = ids[ids.index(self.start_id) + 1 :]
        elif repair:
            added_start = True
        else:
            raise MeshTokenError(f"no {MESH_START} token in the sequence; pass repair=True to accept bare codes")
        if self.end_id in ids:
            ids = ids[: ids.index(self.end_id)]
        elif repair:
            added_end = True
        else:
            raise MeshTokenError(f"no {MESH_END} after {MESH_START}: the mesh was cut off")
        body = np.asarray(ids, dtype=np.int64)
        non_code = ~self.is_code(body)
        if non_code.any():
            i = int(np.argmax(non_code))
            raise MeshTokenError(f"token id {int(body[i])} at mesh position {i} is not a mesh code")
        codes = body - self.code_offset
        return _fit(codes, self.tokens_per_mesh, repair, added_start, added_end, self.check_codes)

    # --- text <-> code -----------------------------------------------------------------
    def text_from_codes(self, codes) -> str:
        return text_from_codes(self.check_codes(codes))

    def codes_from_text(self, text: str, repair: bool = False) -> tuple[np.ndarray, Repair]:
        return codes_from_text(text, self.num_codes, self.tokens_per_mesh, repair)


def text_from_codes(codes) -> str:
    """`<mesh-start><mesh12>…<mesh-end>` for a code array (no tokenizer or codebook check needed)."""
    return MESH_START + "".join(MESH_CODE.format(c) for c in np.asarray(codes).reshape(-1).tolist()) + MESH_END


def codes_from_text(
    text: str, num_codes: int = NUM_CODES, tokens_per_mesh: int = TOKENS_PER_MESH, repair: bool = False
) -> tuple[np.ndarray, Repair]:
    """Parse `<mesh-start><mesh12>…<mesh-end>` text (whitespace allowed) without a tokenizer."""
    added_start = added_end = False
    start = text.find(MESH_START)
    if start >= 0:
        text = text[start + len(MESH_START) :]
    elif repair:
        added_start = True
    else:
        raise MeshTokenError(f"no {MESH_START} in the text; pass repair=True to accept bare codes")
    end = text.find(MESH_END)
    if end >= 0:
        text = text[:end]
    elif repair:
        added_end = True
    else:
        raise MeshTokenError(f"no {MESH_END} after {MESH_START}: the mesh was cut off")
    leftover = _CODE_RE.sub("", text).strip()
    if leftover:
        raise MeshTokenError(f"unexpected text inside the mesh: {leftover[:40]!r}")
    codes = np.asarray([int(m) for m in _CODE_RE.findall(text)], dtype=np.int64)

    def check(c):
        bad = c >= num_codes
        if bad.any():
            raise MeshTokenError(f"code {int(c[np.argmax(bad)])} is outside the codebook [0, {num_codes})")
        if c.size != tokens_per_mesh:
            raise MeshTokenError(f"a mesh needs exactly {tokens_per_mesh} codes, got {c.size}")
        return c

    return _fit(codes, tokens_per_mesh, repair, added_start, added_end, check)


def _fit(codes, n, repair, added_start, added_end, check):
    padded = truncated = 0
    if repair:
        if codes.size == 0:
            raise MeshTokenError("the mesh has no codes at all; nothing to repair")
        if codes.size < n:
            padded = n - codes.size
            codes = np.concatenate([codes, np.full(padded, codes[-1], dtype=np.int64)])
        elif codes.size > n:
            truncated = codes.size - n
            codes = codes[:n]
    return check(codes), Repair(padded, truncated, added_start, added_end)


def add_mesh_tokens(tokenizer, num_codes: int = NUM_CODES) -> MeshVocab:
    """Add the mesh tokens to a tokenizer (for building new models), as one consecutive block."""
    new = [MESH_CODE.format(i) for i in range(num_codes)] + [MESH_START, MESH_END]
    tokenizer.add_tokens(new, special_tokens=False)
    return MeshVocab.from_tokenizer(tokenizer, num_codes)
