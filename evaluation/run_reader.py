"""A finished run folder read back for its reports: settings, prompts, records, metrics, failures."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .config import EvalError
from .files import ERROR_LOG, METRICS_FILE, RECORD, SETTINGS_FILE, read_json


@dataclass
class Run:
    path: Path
    settings: dict
    items: list[dict]  # the selected benchmark prompts: id, prompt, category, reference
    records: dict[str, dict]
    metrics: dict
    failures: list[dict]  # unresolved: the last error of each prompt that has no record
    reference_failures: list[dict] = field(default_factory=list)

    @property
    def label(self) -> str:
        return str(self.settings.get("label") or self.path.name)

    def categories(self) -> list[str]:
        return list(dict.fromkeys(i["category"] for i in self.items))

    def samples(self, category: str | None = None) -> list[dict]:
        """Every sample of every done prompt, with its prompt's id/category/prompt attached."""
        out = []
        for item in self.items:
            rec = self.records.get(item["id"])
            if rec is None or (category is not None and item["category"] != category):
                continue
            for s in rec["samples"]:
                out.append(dict(s, id=item["id"], category=item["category"], prompt=item["prompt"]))
        return out


def load_run(path: str | Path) -> Run:
    path = Path(path)
    settings = read_json(path / SETTINGS_FILE)
    items = read_json(path / "benchmark.json")
    if settings is None or items is None:
        raise EvalError(f"'{path}' is not an evaluation folder (no {SETTINGS_FILE}); run `ar3d eval --out {path}` first")
    records = {}
    for item in items:
        rec = read_json(path / "samples" / item["id"] / RECORD)
        if rec is not None and rec.get("prompt") == item["prompt"]:
            records[item["id"]] = rec
    last: dict[tuple[str, str], dict] = {}
    log = path / ERROR_LOG
    if log.is_file():
        for line in log.read_text().splitlines():
            try:
                e = json.loads(line)
                last[(e["id"], e.get("stage", ""))] = e
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    selected = {i["id"] for i in items}
    failures, ref_failures = {}, []
    for (item_id, stage), e in last.items():
        if item_id not in selected:
            continue
        if stage == "reference":
            if not (path / "references" / item_id / "features.npz").is_file():
                ref_failures.append(e)
        elif item_id not in records:
            if item_id not in failures or e.get("time", 0) >= failures[item_id].get("time", 0):
                failures[item_id] = e
    order = {i["id"]: n for n, i in enumerate(items)}
    fails = sorted(failures.values(), key=lambda e: order.get(e["id"], 0))
    return Run(path, settings, items, records, read_json(path / METRICS_FILE) or {}, fails, ref_failures)
