"""Training prompts: read a prompt file, hand out batches, resume at the exact prompt.

Why a global stream: every process reads the same file and walks the same sequence of shuffled
epochs (a permutation per epoch from ``seed`` and the epoch number); each call of
``next_batch(n)`` takes the next ``n × world_size`` prompts of that stream and process ``rank``
keeps its own contiguous ``n``. So processes see disjoint prompts (within an epoch every prompt
is used exactly once across all processes), the position is the same on every process (the
main process's ``state_dict()`` is enough to resume all of them, even with a different number of
processes), and nothing depends on the global RNGs. All processes must call ``next_batch`` with
the same ``n`` in lock-step, which a data-parallel trainer does anyway.

Formats: ``.txt`` (one prompt a line; blank lines and lines starting with ``#`` are skipped),
``.jsonl`` (one JSON object a line; the prompt field, everything else kept as metadata) and
``.csv`` (a header row; the prompt column, the other columns as metadata). A bad row is an
error naming the file and line, never silently skipped: a training set that quietly lost rows
is a different training set.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.errors import Ar3dError

FORMATS = {".txt": "txt", ".jsonl": "jsonl", ".csv": "csv"}
FALLBACK_FIELD = "caption"  # used when the prompt field is the default "prompt" and a row lacks it


class PromptFileError(Ar3dError, ValueError):
    """The prompt file is missing or has a bad row (the message names file and line)."""


@dataclass(frozen=True)
class PromptItem:
    """One prompt: its text, the row's other fields, and its 0-based index among the file's prompts."""

    prompt: str
    metadata: dict[str, Any] = field(default_factory=dict)
    index: int = 0


def format_of(path: str | Path) -> str:
    """The format of a prompt file by its extension."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot tell the format of '{path}' from its extension; use .txt, .jsonl or .csv, or set data.format"
        )
    return fmt


def read_prompts(path: str | Path, format: str = "auto", prompt_field: str = "prompt") -> list[PromptItem]:
    """All prompts of a file, in file order."""
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(f"prompt file '{path}' not found; set data.path to an existing .txt/.jsonl/.csv file")
    fmt = format_of(path) if format == "auto" else format
    readers = {"txt": _read_txt, "jsonl": _read_jsonl, "csv": _read_csv}
    if fmt not in readers:
        raise PromptFileError(f"unknown prompt file format {fmt!r}; use 'auto', 'txt', 'jsonl' or 'csv'")
    with path.open(newline="" if fmt == "csv" else None, encoding="utf-8") as f:
        rows = list(readers[fmt](f, path, prompt_field))
    items = [PromptItem(prompt=p, metadata=m, index=i) for i, (p, m) in enumerate(rows)]
    if not items:
        raise PromptFileError(f"prompt file '{path}' holds no prompts")
    return items


def _read_txt(f, path: Path, prompt_field: str):
    for line in f:
        text = line.strip()
        if text and not text.startswith("#"):
            yield text, {}


def _fields_for(prompt_field: str) -> tuple[str, ...]:
    return (prompt_field, FALLBACK_FIELD) if prompt_field == "prompt" else (prompt_field,)


def _read_jsonl(f, path: Path, prompt_field: str):
    names = _fields_for(prompt_field)
    for lineno, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise PromptFileError(f"{path}:{lineno}: not valid JSON ({e}); each line must be one JSON object") from None
        if not isinstance(row, dict):
            raise PromptFileError(f"{path}:{lineno}: a JSON {type(row).__name__}, expected an object like {{\"prompt\": \"...\"}}")
        key = next((k for k in names if k in row), None)
        if key is None:
            raise PromptFileError(
                f"{path}:{lineno}: no {' or '.join(repr(n) for n in names)} field (fields: {sorted(row)}); "
                "set data.prompt_field to the field that holds the prompt"
            )
        prompt = row.pop(key)
        if not isinstance(prompt, str) or not prompt.strip():
            raise PromptFileError(f"{path}:{lineno}: field '{key}' must be a non-empty string, got {prompt!r}")
        yield prompt.strip(), row


def _read_csv(f, path: Path, prompt_field: str):
    reader = csv.reader(f)
    header = next(reader, None)
    if not header:
        raise PromptFileError(f"{path}: empty CSV file; the first row must be a header naming a '{prompt_field}' column")
    header = [h.strip() for h in header]
    names = _fields_for(prompt_field)
    key = next((k for k in names if k in header), None)
    if key is None:
        raise PromptFileError(
            f"{path}:1: the header has no {' or '.join(repr(n) for n in names)} column (columns: {header}); "
            "set data.prompt_field to the column that holds the prompt"
        )
    col = header.index(key)
    for row in reader:
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise PromptFileError(f"{path}:{reader.line_num}: {len(row)} fields, the header has {len(header)} (quote fields that contain commas)")
        prompt = row[col].strip()
        if not prompt:
            raise PromptFileError(f"{path}:{reader.line_num}: empty '{key}'")
        yield prompt, {h: v for i, (h, v) in enumerate(zip(header, row)) if i != col}


class PromptSource:
    """Shuffled epochs of a prompt list, sharded across processes, resumable at the exact prompt.

    ``PromptSource(path, ...)`` reads a file; ``PromptSource.from_items([...])`` takes prompts (or
    ``PromptItem``s) directly.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        format: str = "auto",
        prompt_field: str = "prompt",
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        items: Sequence[PromptItem] | None = None,
    ) -> None:
        if (path is None) == (items is None):
            raise ValueError("give a prompt file path or items, not both or neither")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.path = Path(path) if path is not None else None
        self.items: list[PromptItem] = list(items) if items is not None else read_prompts(path, format, prompt_field)
        if not self.items:
            raise PromptFileError("no prompts to train on")
        self.shuffle, self.seed, self.rank, self.world_size = shuffle, int(seed), rank, world_size
        self.epoch = 0  # of the global stream
        self.position = 0  # next index into the epoch's order
        self._order_epoch, self._order = -1, np.arange(0)

    @classmethod
    def from_items(cls, prompts: Sequence[str | PromptItem], **kwargs) -> "PromptSource":
        items = [p if isinstance(p, PromptItem) else PromptItem(str(p), {}, i) for i, p in enumerate(prompts)]
        return cls(items=items, **kwargs)

    @classmethod
    def from_config(cls, data, rank: int = 0, world_size: int = 1) -> "PromptSource":
        """From a ``DataSection`` (``TrainConfig.data``)."""
        return cls(data.path, format=data.format, prompt_field=data.prompt_field, shuffle=data.shuffle,
                   seed=data.seed, rank=rank, world_size=world_size)  # fmt: skip

    def __len__(self) -> int:
        return len(self.items)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if epoch != self._order_epoch:
            n = len(self.items)
            self._order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
            self._order_epoch = epoch
        return self._order

    def next_batch(self, n: int) -> list[PromptItem]:
        """This process's next ``n`` prompts (the stream advances by ``n × world_size``)."""
        if n < 1:
            raise ValueError(f"batch size must be >= 1, got {n}")
        taken: list[PromptItem] = []
        for _ in range(n * self.world_size):
            order = self._epoch_order(self.epoch)
            taken.append(self.items[int(order[self.position])])
            self.position += 1
            if self.position == len(order):
                self.epoch, self.position = self.epoch + 1, 0
        return taken[self.rank * n : (self.rank + 1) * n]

    def state_dict(self) -> dict[str, Any]:
        """The stream position (identical on every process) and what it is valid for."""
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed, "shuffle": self.shuffle,
                "num_prompts": len(self.items)}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Continue at ``state``'s prompt. ``strict``: refuse when the file or the seed changed,
        since the position would then point at different prompts."""
        if strict:
            for key, now in (("num_prompts", len(self.items)), ("seed", self.seed), ("shuffle", self.shuffle)):
                if key in state and state[key] != now:
                    raise PromptFileError(
                        f"cannot resume the prompt stream: {key} was {state[key]!r} when it was saved, now {now!r}. "
                        "Use the same prompt file and data settings, or load with strict=False to continue anyway."
                    )
        self.epoch = int(state["epoch"])
        self.position = int(state["position"]) % len(self.items)
