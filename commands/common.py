"""What the commands share: the user-error type, output paths, sidecar writing, progress bars."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..core.errors import Ar3dError

EXPORT_FORMATS = (".glb", ".obj", ".ply", ".stl")


class CliError(Ar3dError):
    """A problem the user can fix; printed without a traceback."""


def sampling_config(args):
    from ..core.sampling import SamplingConfig

    return SamplingConfig(
        temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, max_plan_tokens=args.max_plan_tokens
    )


def output_paths(out: Path, n: int) -> list[Path]:
    """The mesh files ``-o out`` names for ``n`` samples, checked writable (folders made)."""
    if out.suffix.lower() not in EXPORT_FORMATS:
        raise CliError(f"cannot write '{out}': the output must end in one of {', '.join(EXPORT_FORMATS)}")
    check_writable(out)
    if n == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(n)]


def check_writable(out: Path) -> None:
    """Make ``out``'s folder and check a file can be written there, before any model loads."""
    out = Path(out)
    if out.is_dir():
        raise CliError(f"cannot write '{out}': it is a folder; give a file name")
    folder = out.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CliError(f"cannot write '{out}': '{_first_file(folder)}' is a file, not a folder") from None
    except OSError as e:
        raise CliError(f"cannot write '{out}': cannot make the folder '{folder}' ({e.strerror or e})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CliError(f"cannot write '{out}': no permission to write in '{folder}'")
    if out.exists() and not os.access(out, os.W_OK):
        raise CliError(f"cannot write '{out}': the file exists and is read-only")


def _first_file(folder: Path) -> Path:
    for parent in [*reversed(folder.parents), folder]:
        if parent.exists() and not parent.is_dir():
            return parent
    return folder


def silence_progress_bars() -> None:
    """``-q``: no bars at all, also those of huggingface_hub (downloads) and transformers (loading)."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TQDM_DISABLE"] = "1"  # any other tqdm bar (tqdm >= 4.66 reads it)
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
    except OSError as e:
        raise CliError(f"cannot write '{path}': {e.strerror or e}") from None


class ProgressBar:
    """A tqdm bar per generation step: plan tokens first, then mesh codes of 1024."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar, self.key = enabled, None, None

    def __call__(self, p) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        key = (p.step, p.stage)
        if key != self.key:
            self.close()
            label = f"step {p.step}/{p.steps} {p.stage}" if p.steps > 1 else p.stage
            self.bar = tqdm(total=p.total, desc=label, unit="tok", leave=True, file=sys.stderr)
            self.key = key
        self.bar.update(p.mesh_tokens - self.bar.n)  # tqdm throttles redraws (mininterval)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
