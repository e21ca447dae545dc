"""`ar3d eval`'s engine: benchmark prompts → meshes → renders → metrics → report, resumable.

Per prompt (``OUT/samples/<id>/``), in two durable stages:

1. **generation** — prompts are generated in batches of ``batch_size`` (every sample of every
   prompt of a batch in one ``TextTo3D.generate`` call), each mesh is written as
   ``sample_<s>.glb``, the decoded grids as ``occupancy.npz``, and ``generation.json`` (plans,
   codes, seed, batch) last: a rerun that finds it does not generate again;
2. **scoring** — the meshes are rendered by the Blender worker pool (the evaluation ring into
   ``sample_<s>/``, plus the six reward views in memory when a reward reads views), features,
   CLIP score, rewards and geometry statistics are computed and ``record.json`` is written last
   (atomically): a prompt with a record is done and skipped by reruns.

While the workers render one batch the next batch is generated. A failure of one prompt (the
prompt is refused, generation raises, a render fails) is appended to ``OUT/errors.jsonl`` and
shown in the report; the other prompts go on, and a rerun retries it. A batch whose generation
raises is retried prompt by prompt, so one bad prompt does not sink its batch-mates.

Seeds: batch ``[id₁, …]`` is sampled with seed ``(seed + crc32("id₁,id₂,…")) mod 2³¹``, so a
rerun with the same settings reproduces it; with ``batch_size = 1`` every prompt's seed depends
on its id alone (the way to get per-prompt results that do not depend on the selection or on
what an interrupted run had already done).

KD and FD compare the Inception/DINOv2 features of the generated views of prompts that have a
reference mesh with those of the references, rendered with the same views into
``OUT/references/<id>/``; without references they are reported as not available. Every KD/FD
entry names its extractor and weights (sha256), and a rerun on an OUT whose features came from
other weights is refused, as a rerun with other generation settings is.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import time
import zlib
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..core.engine import SamplingConfig
from ..core.errors import Ar3dError
from ..core.prequantized import read_metadata
from ..core.quantize import resolve_precision
from .benchmark import Benchmark, BenchmarkItem, load_benchmark
from .features import EXTRACTORS, KD_FEATURES

ERROR_LOG = "errors.jsonl"
SETTINGS_FILE = "eval.json"
METRICS_FILE = "metrics.json"
RECORD = "record.json"
GENERATION = "generation.json"
TRELLIS_RING = "ring:8@30"  # 8 views every 45° at 30° elevation, radius 2, FoV 40° (TRELLIS-style)
# Settings a resumed run must share with the run that wrote OUT, or its records would mix.
RESUME_KEYS = ("model_path", "vqvae", "precision", "samples", "two_step", "seed", "batch_size", "sampling", "views",
               "resolution", "engine", "render_samples", "rewards")  # fmt: skip
_OLD_DEFAULTS = {"precision": "default"}  # keys older runs did not record, with the value they ran with


class EvalError(Ar3dError):
    """The evaluation cannot start or continue (bad settings, no Blender, an incompatible OUT)."""


@dataclass
class EvalConfig:
    """One evaluation run. Every field has a working default except ``out``.

    benchmark: a bundled suite's name or a JSONL file (default: the bundled ``ar3d-reason``).
    categories / limit: evaluate only these categories / the first ``limit`` prompts of each.
    model / vqvae / device / dtype: as ``ar3d generate`` (default model: $AR3D_MODEL, the demo…).
    label: the run's name in reports (default: the model's folder name).
    samples: samples per prompt. two_step: Hi-GRPO two-step generation (the refined mesh is scored).
    seed: base seed (see the module docstring). batch_size: prompts per generate call.
    sampling: temperature, top-p, top-k, plan length (the public demo's by default).
    views: the evaluation ring (``ring:8@30``: 8 views at 30° elevation; ``ring:4@30`` for 4;
        any ``headless.views.parse_views`` spec). resolution / engine / render_samples: renders.
    workers: Blender worker processes (None: ``PoolConfig``'s default). render_timeout_s: per mesh.
    render_backend: "local" (worker processes here) or "ray" (render actors on the Ray cluster at
        ``ray_address``: "auto", "local" or HOST:PORT; see ``ar3d.headless.ray_pool``).
    rewards: a reward preset (``geometry``, ``demo``, ``paper``), a TOML file, or ``none``.
    reward_resolution: side of the six reward views (rendered only when a reward reads views).
    metrics: None ("auto": clip, the FID inception and dinov2 whenever their weights are found;
        torchvision's inception_tv only in place of a missing FID Inception) or a list of
        ``clip``, ``inception``, ``inception_tv``, ``dinov2`` (required: missing weights are an error).
    clip_model / clip_checkpoint / inception_weights / inception_tv_weights / dinov2: where the
        extractors come from (see ``features``); an explicit one is required.
    feature_batch_size: images per forward pass of the extractors.
    kd_subsets / kd_subset_size: KD's random subsets (100 of 1000, shrunk to the smaller set).
    top_k: samples in the report's best / worst grids. progress: tqdm bars on stderr.
    """

    out: Path
    benchmark: str | None = None
    categories: list[str] | None = None
    limit: int | None = None
    model: str | None = None
    vqvae: str | None = None
    device: str | None = None
    dtype: str | None = None
    precision: str | None = None  # fp8 / int8 weights for generation (GPU; core/quantize.py)
    label: str | None = None
    samples: int = 1
    two_step: bool = False
    seed: int = 0
    batch_size: int = 8
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    views: str = TRELLIS_RING
    resolution: int = 512
    engine: str = "workbench"
    render_samples: int = 16
    workers: int | None = None
    render_timeout_s: float = 300.0
    render_backend: str = "local"
    ray_address: str = "auto"
    rewards: str = "geometry"
    reward_resolution: int = 256
    metrics: list[str] | None = None
    clip_model: str = "ViT-L-14"
    clip_checkpoint: str | None = None
    inception_weights: str | None = None
    dinov2: str | None = None
    inception_tv_weights: str | None = None
    feature_batch_size: int = 32
    kd_subsets: int = 100
    kd_subset_size: int = 1000
    top_k: int = 4
    progress: bool = True

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.samples < 1:
            raise EvalError(f"samples must be >= 1, got {self.samples}")
        if self.batch_size < 1:
            raise EvalError(f"batch size must be >= 1, got {self.batch_size}")
        if self.kd_subsets < 1 or self.kd_subset_size < 2:
            raise EvalError("KD needs at least 1 subset of at least 2 features")

    def render_config(self):
        from ..headless.render import RenderConfig

        try:
            return RenderConfig(engine=self.engine, resolution=self.resolution, samples=self.render_samples,
                                views=self.views, background="transparent").validate()  # fmt: skip
        except ValueError as e:
            raise EvalError(f"render settings: {e}") from None

    def reward_render_config(self):
        from ..headless.render import RenderConfig

        return RenderConfig(engine=self.engine, resolution=self.reward_resolution, samples=self.render_samples,
                            views="six", background="transparent")  # fmt: skip


@dataclass
class RunResult:
    out: Path
    total: int = 0
    done: int = 0  # prompts with a record (this run or earlier)
    skipped: int = 0  # already done when the run started
    generated: int = 0  # prompts generated by this run
    failed: list[dict] = field(default_factory=list)  # {"id", "stage", "error"} of this run
    seconds: float = 0.0
    report: dict = field(default_factory=dict)  # "md" / "html" → path

    def line(self) -> str:
        return (f"{self.done} of {self.total} prompts done ({self.skipped} already before, {self.generated} generated now), "
                f"{len(self.failed)} failed, {self.seconds:.1f} s")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# small file helpers


def write_json(path: Path, data: Any) -> None:
    """Atomic: a reader never sees half a file, and a crash leaves the old one or none."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_json_default))
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _save_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def batch_seed(seed: int, ids: list[str]) -> int:
    return (int(seed) + zlib.crc32(",".join(ids).encode())) % 2**31


def load_views(folder: Path) -> np.ndarray:
    """The ``view_*.png`` of a render folder as uint8 [V, H, W, 4]."""
    from PIL import Image

    files = sorted(folder.glob("view_*.png"))
    if not files:
        raise FileNotFoundError(f"no views in {folder}")
    return np.stack([np.asarray(Image.open(f).convert("RGBA")) for f in files])


def geometry_stats(mesh, occupancy: np.ndarray | None) -> dict:
    """Watertight, connected components, volume fraction (solid volume / cube of the longest
    side, i.e. of the bounding cube the renderer normalises to; None if not watertight),
    faces, vertices, and the decoded grid's occupied fraction."""
    extent = float(np.max(mesh.extents)) if len(mesh.vertices) else 0.0
    watertight = bool(mesh.is_watertight)
    volume_fraction = float(abs(mesh.volume) / extent**3) if watertight and extent > 0 else None
    return {
        "watertight": watertight,
        "components": int(mesh.body_count),
        "volume_fraction": volume_fraction,
        "faces": int(len(mesh.faces)),
        "vertices": int(len(mesh.vertices)),
        "occupancy_fraction": None if occupancy is None else float(np.asarray(occupancy).mean()),
    }


# ---------------------------------------------------------------------------------------------
# the run


@dataclass
class _Pending:
    """A batch between generation and its record: its render jobs are in the pool."""

    items: list[BenchmarkItem]
    gens: dict[str, dict]
    futures: dict[tuple[str, int, str], Future] = field(default_factory=dict)


class EvalRunner:
    """Runs one ``EvalConfig``. Pipeline, extractors, reward ensemble and render pool may be
    passed in (shared between the two runs of a comparison; tests inject small ones)."""

    def __init__(self, config: EvalConfig, *, pipeline=None, features=None, ensemble=None, pool=None):
        self.cfg = config
        self.pipeline = pipeline
        self.features = features
        self.ensemble = ensemble
        self.pool = pool
        self.out = config.out
        self.samples_dir = self.out / "samples"
        self.refs_dir = self.out / "references"
        self.result = RunResult(self.out)
        self._bar = None
        self._needs: set[str] = set()

    # ---- set-up ------------------------------------------------------------------------
    def _policy_paths(self) -> tuple[str, str]:
        if self.pipeline is not None:
            return str(self.pipeline.policy.path or self.pipeline.policy.name), str(self.pipeline.vqvae_path)
        from ..core.hub import resolve_policy, resolve_vqvae

        policy = resolve_policy(self.cfg.model)
        return str(policy), str(resolve_vqvae(self.cfg.vqvae, policy))

    def settings(self, bench: Benchmark) -> dict:
        model_path, vqvae = self._policy_paths()
        c = self.cfg
        return {
            "ar3d_version": __version__,
            "label": c.label or Path(model_path).name,
            "model": c.model or model_path,
            "model_path": model_path,
            "vqvae": vqvae,
            # a folder from `ar3d quantize` runs in its stored precision (Policy.load refuses others)
            "precision": (read_metadata(model_path) or {}).get("precision") or resolve_precision(c.precision),
            "benchmark": {"name": bench.name, "path": str(bench.path)},
            "samples": c.samples,
            "two_step": c.two_step,
            "seed": c.seed,
            "batch_size": c.batch_size,
            "sampling": asdict(c.sampling),
            "views": c.views,
            "resolution": c.resolution,
            "engine": c.engine,
            "render_samples": c.render_samples,
            "rewards": c.rewards,
            "kd": {"subsets": c.kd_subsets, "subset_size": c.kd_subset_size},
        }

    def _check_resume(self, settings: dict) -> None:
        old = read_json(self.out / SETTINGS_FILE)
        if old is None:
            return
        old = {**_OLD_DEFAULTS, **old}
        diff = [k for k in RESUME_KEYS if old.get(k) != settings.get(k)]
        if diff:
            details = "; ".join(f"{k}: {old.get(k)!r} there, {settings.get(k)!r} now" for k in diff)
            raise EvalError(
                f"'{self.out}' holds an evaluation with other settings ({details}). Its records would mix with "
                "this run's: pass another --out, or delete that folder to start over."
            )

    def _check_features(self, features) -> None:
        """Records and reference features of OUT must come from the extractors loaded now."""
        old = read_json(self.out / SETTINGS_FILE)
        if old is None or features is None:
            return
        from .features import feature_mismatches

        diff = feature_mismatches(old.get("features") or {}, features.describe())
        if diff:
            raise EvalError(
                f"'{self.out}' holds features from other extractors or weights ({'; '.join(diff)}, there vs now). "
                "Its records would mix with this run's: pass the same weights, another --out, or delete that folder."
            )

    def _reward_needs(self) -> set[str]:
        if self.ensemble is None:
            return set()
        needs: set[str] = set()
        for term in self.ensemble.terms(2 if self.cfg.two_step else 1):
            needs |= set(getattr(self.ensemble.reward(term), "needs", {"views"}))
        return needs

    # ---- state on disk ---------------------------------------------------------------------
    def item_dir(self, item: BenchmarkItem) -> Path:
        return self.samples_dir / item.id

    def is_done(self, item: BenchmarkItem) -> bool:
        rec = read_json(self.item_dir(item) / RECORD)
        return rec is not None and rec.get("prompt") == item.prompt

    def generation_of(self, item: BenchmarkItem) -> dict | None:
        gen = read_json(self.item_dir(item) / GENERATION)
        return gen if gen is not None and gen.get("prompt") == item.prompt else None

    def _fail(self, item_id: str, stage: str, error: str, tick: bool = True) -> None:
        """Record a failure in OUT/errors.jsonl and the result; the run goes on."""
        entry = {"id": item_id, "stage": stage, "error": error, "time": time.time()}
        self.result.failed.append({k: entry[k] for k in ("id", "stage", "error")})
        with open(self.out / ERROR_LOG, "a") as f:
            f.write(json.dumps(entry) + "\n")
        if tick:
            self._tick()

    def _tick(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def _status(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    # ---- main ----------------------------------------------------------------------------------
    def run(self) -> RunResult:
        t0 = time.perf_counter()
        c = self.cfg
        bench = load_benchmark(c.benchmark).select(c.categories, c.limit)
        for w in bench.warnings:
            print(f"ar3d eval: warning: {w}", file=sys.stderr)
        c.render_config()  # bad view/render settings fail before anything is loaded
        self.out.mkdir(parents=True, exist_ok=True)
        settings = self.settings(bench)
        self._check_resume(settings)
        self.result.total = len(bench.items)
        for item in bench.items:  # a changed prompt makes its old files stale
            d = self.item_dir(item)
            if d.exists() and not self.is_done(item) and read_json(d / GENERATION) is not None and self.generation_of(item) is None:
                shutil.rmtree(d)
        done = [i for i in bench.items if self.is_done(i)]
        todo = [i for i in bench.items if not self.is_done(i)]
        self.result.skipped = len(done)
        need_refs = [i for i in bench.items if i.reference is not None]
        if self.features is None:
            self.features = load_features(c)
        features = self.features
        self._check_features(features)
        own_ensemble = self.ensemble is None
        if own_ensemble:
            self.ensemble = load_rewards(c)
        self._needs = self._reward_needs()
        settings["features"] = features.describe()
        settings["benchmark"]["prompts"] = len(bench.items)
        settings["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
        write_json(self.out / SETTINGS_FILE, settings)
        write_json(self.out / "benchmark.json", [
            {"id": i.id, "prompt": i.prompt, "category": i.category, "reference": None if i.reference is None else str(i.reference)}
            for i in bench.items
        ])  # fmt: skip
        kd_features = [n for n in KD_FEATURES if features.get(n) is not None]
        if todo or (need_refs and kd_features):
            from ..headless.pool import PoolConfig, open_pool, renders_here_need_bpy

            pool_config = PoolConfig(workers=c.workers, timeout_s=c.render_timeout_s)
            if self.pool is None and renders_here_need_bpy(pool_config, c.render_backend) and importlib.util.find_spec("bpy") is None:
                raise EvalError("ar3d eval renders with Blender as a Python module: pip install 'ar3d[render]' (bpy, Python 3.11)")
            own_pool = self.pool is None
            if own_pool:
                self.pool = open_pool(pool_config, c.render_config(), c.render_backend, _ray_config(c))
            finished = False
            try:
                if need_refs and kd_features:
                    self._references(need_refs)
                if todo:
                    self._evaluate(todo)
                finished = True
            finally:
                if self._bar is not None:
                    self._bar.close()
                    self._bar = None
                if own_pool:  # on Ctrl-C or an error: stop the workers now, do not finish the queue
                    self.pool.close() if finished else self.pool.terminate()
                    self.pool = None
        if own_ensemble and self.ensemble is not None:
            self.ensemble.close()
        self.result.done = sum(self.is_done(i) for i in bench.items)
        write_json(self.out / METRICS_FILE, self.dataset_metrics(bench))
        from .report import write_report

        self.result.report = {k: str(v) for k, v in write_report(self.out, top_k=c.top_k).items()}
        self.result.seconds = time.perf_counter() - t0
        return self.result

    # ---- references ----------------------------------------------------------------------------
    def _references(self, items: list[BenchmarkItem]) -> None:
        wanted = {n for n in KD_FEATURES if self.features.get(n) is not None}
        todo = [i for i in items if not wanted <= set(self._load_npz(self.refs_dir / i.id / "features.npz") or {})]
        if not todo:
            return
        self.refs_dir.mkdir(parents=True, exist_ok=True)
        bar = self._make_bar(len(todo), "references", "mesh")
        futures = {
            i.id: self.pool.submit(str(i.reference), self.cfg.render_config(),
                                   then=("ar3d.evaluation._jobs:write_views", (str(self.refs_dir), i.id, str(i.reference))))
            for i in todo
        }  # fmt: skip
        for item in todo:
            job = _job_result(futures[item.id])
            if not job.ok:
                self._fail(item.id, "reference", f"reference mesh {item.reference}: {job.error}", tick=False)
            else:
                try:
                    feats = self._image_features(job.result, KD_FEATURES)
                    _save_npz(self.refs_dir / item.id / "features.npz", **feats)
                except Exception as e:  # a feature failure loses this reference only
                    self._fail(item.id, "reference", f"{type(e).__name__}: {e}", tick=False)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()

    def _make_bar(self, total: int, desc: str, unit: str, initial: int = 0):
        if not self.cfg.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)

    # ---- prompts -------------------------------------------------------------------------------
    def _evaluate(self, todo: list[BenchmarkItem]) -> None:
        label = self.cfg.label or "eval"
        self._bar = self._make_bar(self.result.total, label, "prompt", initial=self.result.skipped)
        ready = [i for i in todo if self.generation_of(i) is not None]
        fresh = [i for i in todo if self.generation_of(i) is None]
        pending: list[_Pending] = []
        if ready:  # generated by an earlier run: straight to rendering
            pending.append(self._submit(_Pending(ready, {i.id: self.generation_of(i) for i in ready})))
        bs = self.cfg.batch_size
        batches = [fresh[k : k + bs] for k in range(0, len(fresh), bs)]
        for n, batch in enumerate(batches, 1):
            self._status(f"generating batch {n}/{len(batches)}")
            gens = self._generate(batch)
            pending.append(self._submit(_Pending([i for i in batch if i.id in gens], gens)))
            while len(pending) > 1:  # the workers render batch k while batch k+1 generates
                self._finish(pending.pop(0))
        while pending:
            self._finish(pending.pop(0))

    def _pipeline(self):
        if self.pipeline is None:
            from ..core.pipeline import TextTo3D

            self._status("loading the model")
            self.pipeline = TextTo3D.load(self.cfg.model, self.cfg.vqvae, device=self.cfg.device, dtype=self.cfg.dtype,
                                          precision=self.cfg.precision)  # fmt: skip
        return self.pipeline

    def _generate(self, batch: list[BenchmarkItem]) -> dict[str, dict]:
        """Generate a batch; if it raises, each prompt alone. Returns id → generation record."""
        pipe = self._pipeline()
        c = self.cfg
        ids = [i.id for i in batch]
        seed = batch_seed(c.seed, ids)
        progress = self._token_progress()
        try:
            out = pipe.generate([i.prompt for i in batch], c.samples, c.two_step, c.sampling, seed, progress=progress)
        except Exception as e:
            if len(batch) == 1:
                self._fail(batch[0].id, "generate", f"{type(e).__name__}: {e}")
                return {}
            gens: dict[str, dict] = {}
            for item in batch:
                gens.update(self._generate([item]))
            return gens
        gens = {}
        for k, item in enumerate(batch):
            results = out.results[k * c.samples : (k + 1) * c.samples]
            try:
                gens[item.id] = self._save_generation(item, results, seed, ids, out, pipe)
                self.result.generated += 1
            except Exception as e:
                self._fail(item.id, "generate", f"saving the meshes: {type(e).__name__}: {e}")
        return gens

    def _token_progress(self):
        if self._bar is None:
            return None
        last = [None]

        def on(p) -> None:
            key = (p.step, p.stage, p.mesh_tokens // 64)
            if key != last[0]:
                last[0] = key
                step = f"step {p.step}/{p.steps} " if p.steps > 1 else ""
                self._bar.set_postfix_str(f"{step}{p.stage} {p.mesh_tokens}/{p.total} tokens")

        return on

    def _save_generation(self, item, results, seed, ids, out, pipe) -> dict:
        from ..core.mesh import export_mesh

        d = self.item_dir(item)
        if d.exists():  # leftovers of an interrupted or stale attempt
            shutil.rmtree(d)
        d.mkdir(parents=True)
        samples = []
        for s, r in enumerate(results):
            entry = {"index": s, "mesh": None, "error": r.error, "plans": r.sample.plans,
                     "codes": [st.codes.tolist() for st in r.sample.steps]}  # fmt: skip
            if r.mesh is not None:
                export_mesh(r.mesh, d / f"sample_{s}.glb")
                entry["mesh"] = f"sample_{s}.glb"
            samples.append(entry)
        _save_npz(d / "occupancy.npz", packed=np.packbits(np.stack([r.occupancy for r in results]).astype(bool)),
                  shape=np.asarray(np.stack([r.occupancy for r in results]).shape))  # fmt: skip
        gen = {
            "id": item.id, "prompt": item.prompt, "category": item.category, "seed": seed, "batch": ids,
            "model": pipe.policy.name, "vqvae": pipe.vqvae_path, "engine": out.generation.engine,
            "two_step": self.cfg.two_step, "sampling": asdict(self.cfg.sampling),
            "timings": {k: round(float(v), 4) for k, v in out.timings.items()}, "samples": samples,
        }  # fmt: skip
        write_json(d / GENERATION, gen)
        return gen

    def _occupancy(self, item: BenchmarkItem) -> np.ndarray | None:
        try:
            with np.load(self.item_dir(item) / "occupancy.npz") as z:
                shape = tuple(int(x) for x in z["shape"])
                return np.unpackbits(z["packed"])[: int(np.prod(shape))].reshape(shape).astype(bool)
        except (OSError, KeyError, ValueError):
            return None

    def _submit(self, p: _Pending) -> _Pending:
        """Queue the renders of a batch: the evaluation ring (written by the worker) and, when a
        reward reads views, the six reward views."""
        for item in p.items:
            d = self.item_dir(item)
            for s in p.gens[item.id]["samples"]:
                if s["mesh"] is None:
                    continue
                mesh = str(d / s["mesh"])
                i = s["index"]
                then = ("ar3d.evaluation._jobs:write_views", (str(d), f"sample_{i}", mesh))
                p.futures[(item.id, i, "eval")] = self.pool.submit(mesh, self.cfg.render_config(), then=then)
                if "views" in self._needs:
                    p.futures[(item.id, i, "reward")] = self.pool.submit(
                        mesh, self.cfg.reward_render_config(), then=("ar3d.evaluation._jobs:images_only", ())
                    )
        return p

    def _finish(self, p: _Pending) -> None:
        """Collect a batch's renders, compute its features, rewards and records."""
        self._status("rendering")
        jobs = {key: _job_result(f) for key, f in p.futures.items()}
        ok_items = []
        for item in p.items:
            bad = [(key, j) for key, j in jobs.items() if key[0] == item.id and not j.ok]
            if bad:
                (_, s, kind), job = bad[0]
                self._fail(item.id, "render", f"sample {s} ({kind} views): {job.error}")
            else:
                ok_items.append(item)
        if not ok_items:
            return
        self._status("scoring")
        try:
            self._score(ok_items, p.gens, jobs)
        except Exception as e:
            if len(ok_items) == 1:
                self._fail(ok_items[0].id, "score", f"{type(e).__name__}: {e}")
                return
            for item in ok_items:  # find the one that breaks it
                try:
                    self._score([item], p.gens, jobs)
                except Exception as e1:
                    self._fail(item.id, "score", f"{type(e1).__name__}: {e1}")

    def _image_features(self, images: np.ndarray, names=EXTRACTORS) -> dict[str, np.ndarray]:
        feats = {}
        for name in names:
            ext = self.features.get(name)
            if ext is not None:
                feats[name] = ext.image_features(images)
        return feats

    def _score(self, items: list[BenchmarkItem], gens: dict[str, dict], jobs: dict) -> None:
        from ..core.mesh import load_mesh
        from .metrics import clip_score

        c = self.cfg
        rows = []  # (item, sample entry, eval views, reward views, mesh, occupancy)
        for item in items:
            occ = self._occupancy(item)
            for s in gens[item.id]["samples"]:
                i = s["index"]
                if s["mesh"] is None:
                    rows.append((item, s, None, None, None, None if occ is None else occ[i]))
                    continue
                views = jobs[(item.id, i, "eval")].result
                reward_views = jobs[(item.id, i, "reward")].result if (item.id, i, "reward") in jobs else None
                mesh = load_mesh(self.item_dir(item) / s["mesh"])
                rows.append((item, s, views, reward_views, mesh, None if occ is None else occ[i]))
        # features of every view of the batch in one pass per extractor
        with_views = [r for r in rows if r[2] is not None]
        feats: dict[str, list[np.ndarray]] = {}
        if with_views:
            counts = [len(r[2]) for r in with_views]
            all_feats = self._image_features(np.concatenate([r[2] for r in with_views]))
            splits = np.cumsum(counts)[:-1]
            feats = {name: np.split(f, splits) for name, f in all_feats.items()}
        text = {}
        if self.features.clip is not None:
            prompts = sorted({it.prompt for it in items})
            text = dict(zip(prompts, self.features.clip.text_features(prompts)))
        rewards = self._rewards(rows)
        per_item: dict[str, dict] = {it.id: {"samples": [], "features": {}} for it in items}
        k = 0
        for n, (item, s, views, _, mesh, occ) in enumerate(rows):
            i = s["index"]
            entry = {"index": i, "mesh": s["mesh"], "error": s["error"], "plans": s["plans"], "views": None,
                     "clip_score": None, "clip_per_view": None, "reward": rewards[n],
                     "geometry": None if mesh is None else geometry_stats(mesh, occ)}  # fmt: skip
            if views is not None:
                entry["views"] = f"sample_{i}"
                for name, parts in feats.items():
                    per_item[item.id]["features"][f"{name}_{i}"] = parts[k]
                if "clip" in feats:
                    entry["clip_score"], entry["clip_per_view"] = clip_score(feats["clip"][k], text[item.prompt])
                k += 1
            per_item[item.id]["samples"].append(entry)
        for item in items:
            d = self.item_dir(item)
            got = per_item[item.id]
            _save_npz(d / "features.npz", **got["features"])
            gen = gens[item.id]
            record = {
                "id": item.id, "prompt": item.prompt, "category": item.category, "seed": gen["seed"],
                "batch": gen["batch"], "two_step": c.two_step, "reference": None if item.reference is None else str(item.reference),
                "features": sorted({key.rsplit("_", 1)[0] for key in got["features"]}),
                "samples": got["samples"], "timings": gen.get("timings", {}), "time": time.time(),
            }  # fmt: skip
            write_json(d / RECORD, record)
            self._tick()

    def _rewards(self, rows) -> list[dict | None]:
        if self.ensemble is None or not rows:
            return [None] * len(rows)
        from ..core.rewards import RewardBatch

        step = 2 if self.cfg.two_step else 1
        batch = RewardBatch(
            prompts=[r[0].prompt for r in rows],
            plans=[(r[1]["plans"] or [""])[-1] for r in rows],
            step1_plans=[(r[1]["plans"] or [""])[0] for r in rows],
            views=[r[3] for r in rows] if "views" in self._needs else None,
            meshes=[r[4] for r in rows],
            occupancy=[r[5] for r in rows],
            metadata=[r[0].metadata for r in rows],
            step=step,
        )
        scores = self.ensemble.score(batch)
        out = []
        for n in range(len(rows)):
            terms = {name: {"value": sc[n].value, "contribution": scores.contributions[name][n], "missing": sc[n].missing}
                     for name, sc in scores.terms.items()}  # fmt: skip
            out.append({"step": step, "total": scores.total[n], "missing": scores.missing[n], "terms": terms})
        return out

    # ---- dataset metrics -------------------------------------------------------------------
    def dataset_metrics(self, bench: Benchmark) -> dict:
        """KD and FD of the generated views against the reference renders, overall and per
        category; every entry either has values or says why it has none."""
        from .metrics import frechet_distance, kernel_distance

        c = self.cfg
        features = self.features
        result: dict[str, Any] = {"features": features.describe() if features else {}, "kd": {}, "fd": {}}
        refs = [i for i in bench.items if i.reference is not None]
        for name in KD_FEATURES:
            if not refs:
                reason = "the benchmark gives no reference meshes (add \"reference\" paths to compute KD and FD)"
                result["kd"][name] = result["fd"][name] = {"reason": reason}
                continue
            if features is None or features.get(name) is None:
                reason = f"{name} features unavailable: " + (features.unavailable.get(name, "") if features else "not loaded")
                result["kd"][name] = result["fd"][name] = {"reason": reason}
                continue
            groups: dict[str, tuple[list, list]] = {}
            for item in refs:
                ref = self._load_npz(self.refs_dir / item.id / "features.npz")
                rec = read_json(self.item_dir(item) / RECORD)
                gen = self._load_npz(self.item_dir(item) / "features.npz")
                if ref is None or name not in ref or rec is None or gen is None:
                    continue
                gen_feats = [gen[k] for k in sorted(gen) if k.rsplit("_", 1)[0] == name]
                for key in ("all", item.category):
                    g, r = groups.setdefault(key, ([], []))
                    g.extend(gen_feats)
                    r.append(ref[name])
            kd, fd = {}, {}
            ident = {"extractor": features.identity(name)}  # which features: architecture, weights, sha256
            for key in ["all"] + [k for k in bench.categories() if k in groups]:
                g, r = groups.get(key, ([], []))
                a = np.concatenate(g) if g else np.zeros((0, 1))
                b = np.concatenate(r) if r else np.zeros((0, 1))
                if len(a) < 2 or len(b) < 2:
                    why = f"needs at least 2 generated and 2 reference views, has {len(a)} and {len(b)}"
                    kd[key] = fd[key] = {"reason": why, "n_generated": len(a), "n_reference": len(b)}
                    continue
                kd[key] = {**kernel_distance(a, b, c.kd_subsets, c.kd_subset_size, seed=c.seed).to_dict(), **ident}
                note = None
                if min(len(a), len(b)) <= a.shape[1]:
                    note = (f"FD from {min(len(a), len(b))} views of {a.shape[1]}-d features (rank-deficient "
                            "covariances): compare such FDs only at equal view counts")
                fd[key] = {"value": frechet_distance(a, b), "n_generated": len(a), "n_reference": len(b), "note": note, **ident}
            result["kd"][name], result["fd"][name] = kd, fd
        return result

    @staticmethod
    def _load_npz(path: Path) -> dict | None:
        try:
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError):
            return None


# ---------------------------------------------------------------------------------------------
# entry points


def load_features(config: EvalConfig):
    """The feature extractors ``config`` asks for (see ``FeatureSet.load``)."""
    from .features import FeatureSet

    c = config
    return FeatureSet.load(c.metrics, clip_model=c.clip_model, clip_checkpoint=c.clip_checkpoint,
                           inception_weights=c.inception_weights, dinov2=c.dinov2, device=c.device,
                           batch_size=c.feature_batch_size, inception_tv_weights=c.inception_tv_weights)  # fmt: skip


def load_rewards(config: EvalConfig):
    """The reward ensemble of ``config.rewards`` (a preset, a TOML file, or none → None); judges
    it needs must be up (``health_check``)."""
    spec = config.rewards
    if spec in (None, "", "none"):
        return None
    from ..core.rewards import RewardConfig, RewardEnsemble

    if spec.endswith(".toml") or Path(spec).is_file():
        reward_config = RewardConfig.from_toml(spec)
    else:
        reward_config = RewardConfig.preset(spec)
    ensemble = RewardEnsemble(reward_config)
    try:
        ensemble.health_check()
    except BaseException:
        ensemble.close()
        raise
    return ensemble


def _job_result(future: Future):
    """A pool job's JobResult; a job cancelled by a pool shutdown becomes a failed one."""
    from ..headless.pool import JobResult

    try:
        return future.result()
    except Exception as e:
        return JobResult(ok=False, error=f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)


def _ray_config(c: EvalConfig):
    if c.render_backend != "ray":
        return None
    from ..headless.ray_pool import RayConfig

    return RayConfig(address=c.ray_address)


def run_eval(config: EvalConfig, **components) -> RunResult:
    return EvalRunner(config, **components).run()


def run_comparison(config_a: EvalConfig, config_b: EvalConfig, out: Path, *, pipelines=(None, None),
                   **components) -> tuple[RunResult, RunResult, dict]:  # fmt: skip
    """Evaluate two checkpoints on the same prompts, seeds and views (into their own ``out``
    folders) and write the comparison report into ``out``. Feature extractors, rewards and the
    render pool are loaded once and shared; the first model is released before the second loads."""
    from .report import write_comparison

    out = Path(out)
    if Path(config_a.out).resolve() == Path(config_b.out).resolve():
        raise EvalError("the two runs of a comparison need different output folders")
    shared = dict(components)
    if shared.get("features") is None:
        shared["features"] = load_features(config_a)
    owned = []
    if shared.get("ensemble") is None:
        shared["ensemble"] = load_rewards(config_a)
        owned.append(shared["ensemble"])
    from ..headless.pool import PoolConfig, open_pool, renders_here_need_bpy

    pool_config = PoolConfig(workers=config_a.workers, timeout_s=config_a.render_timeout_s)
    if shared.get("pool") is None and (importlib.util.find_spec("bpy") is not None
                                       or not renders_here_need_bpy(pool_config, config_a.render_backend)):  # fmt: skip
        shared["pool"] = open_pool(pool_config, None, config_a.render_backend, _ray_config(config_a))
        owned.append(shared["pool"])
    finished = False
    try:
        res_a = EvalRunner(config_a, pipeline=pipelines[0], **shared).run()
        _free_memory()  # the first model goes before the second loads
        res_b = EvalRunner(config_b, pipeline=pipelines[1], **shared).run()
        finished = True
    finally:
        for thing in owned:
            if thing is not None:
                thing.terminate() if not finished and hasattr(thing, "terminate") else thing.close()
    paths = write_comparison(config_a.out, config_b.out, out, top_k=config_a.top_k)
    return res_a, res_b, {k: str(v) for k, v in paths.items()}


def _free_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
