"""What a training run records: timestamped log lines on stdout and ``training_report.json`` in
the model folder, one key per stage, so that stages run on different machines add up to one report."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


class Report:
    """training_report.json in the model folder, updated stage by stage."""

    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {}

    def update(self, key: str, value) -> None:
        self.data[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=_json_default))
        tmp.replace(self.path)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)  # paths, dtypes, devices: a report must never fail to save


def environment(device: torch.device) -> dict:
    import transformers

    env = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "numpy": np.__version__, "device": str(device), "host": platform.node()}  # fmt: skip
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env
