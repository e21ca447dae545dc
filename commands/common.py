"""What the commands share: the user-error type, output paths, sidecar writing, progress bars."""

from __future__ import annotations

import json
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
    if out.suffix.lower() not in EXPORT_FORMATS:
        raise CliError(f"cannot write '{out}': the output must end in one of {', '.join(EXPORT_FORMATS)}")
    if n == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(n)]


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


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
