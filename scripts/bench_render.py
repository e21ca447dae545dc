"""Render throughput: ar3d's worker pool vs one Blender process per mesh, side by side.

Process-per-mesh is the TRELLIS / Objaverse pattern: a fresh `python` (here: bpy as a module)
per object, several in parallel. Both sides render the same meshes with the same settings and
write the same files (six PNG views + grid + transforms.json per mesh), so only the process
model differs.

    .venv/bin/python scripts/bench_render.py --out bench_render.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import trimesh

ONE_MESH = """
import sys
from pathlib import Path
from ar3d.headless.render import RenderConfig, Renderer
cfg = RenderConfig(**{cfg!r})
with Renderer(cfg) as r:
    r.render(sys.argv[1]).write(Path(sys.argv[2]))
"""


def make_meshes(folder: Path, n: int) -> list[Path]:
    shapes = [
        lambda: trimesh.creation.icosphere(3),
        lambda: trimesh.creation.box((1, 0.6, 1.8)),
        lambda: trimesh.creation.torus(1.0, 0.3),
        lambda: trimesh.creation.capsule(1.5, 0.4),
        lambda: trimesh.creation.cylinder(0.5, 2.0, sections=48),
        lambda: trimesh.creation.cone(0.8, 1.6, sections=48),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        mesh = shapes[i % len(shapes)]()
        mesh.apply_scale(1 + 0.1 * i)
        p = folder / f"mesh_{i:03d}.glb"
        mesh.export(p)
        paths.append(p)
    return paths


def run_pool(meshes, out: Path, cfg, workers: int) -> float:
    from ar3d.headless.farm import collect_items, run_farm
    from ar3d.headless.pool import PoolConfig

    t0 = time.perf_counter()
    summary = run_farm(collect_items([str(m) for m in meshes]), out, cfg, PoolConfig(workers=workers), force=True)
    seconds = time.perf_counter() - t0
    if summary.failed:
        raise RuntimeError(f"pool failures: {summary.failures}")
    return seconds


def run_process_per_mesh(meshes, out: Path, cfg, parallel: int) -> float:
    from dataclasses import asdict

    script = ONE_MESH.format(cfg={k: v for k, v in asdict(cfg).items()})

    def one(m: Path):
        subprocess.run([sys.executable, "-c", script, str(m), str(out / m.stem)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    t0 = time.perf_counter()
    with ThreadPoolExecutor(parallel) as ex:
        list(ex.map(one, meshes))
    return time.perf_counter() - t0


def main() -> None:
    from ar3d.headless.render_config import RenderConfig

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workbench-meshes", type=int, default=24)
    ap.add_argument("--cycles-meshes", type=int, default=4)
    ap.add_argument("--workers", type=int, nargs="+", default=None, help="pool sizes (default 1..cores)")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    workers = args.workers or list(range(1, cores + 1))
    tmp = Path(tempfile.mkdtemp(prefix="ar3d_bench_render_"))
    rows = []
    try:
        meshes = make_meshes(tmp, max(args.workbench_meshes, args.cycles_meshes))
        cases = [
            ("workbench 224² ×6", RenderConfig(engine="workbench", resolution=224), args.workbench_meshes),
            ("cycles 512² ×6, 16 spp, CPU", RenderConfig(engine="cycles", resolution=512, samples=16, device="cpu"), args.cycles_meshes),
        ]  # fmt: skip
        for name, cfg, n in cases:
            if n <= 0:
                continue
            subset = meshes[:n]
            per_process = run_process_per_mesh(subset, tmp / "ppm", cfg, parallel=max(workers))
            row = {"case": name, "meshes": n, "process_per_mesh": {"parallel": max(workers), "seconds": per_process,
                                                                  "meshes_per_s": n / per_process}, "pool": []}  # fmt: skip
            for w in workers:
                s = run_pool(subset, tmp / f"pool{w}", cfg, w)
                row["pool"].append({"workers": w, "seconds": s, "meshes_per_s": n / s})
            best = max(p["meshes_per_s"] for p in row["pool"])
            same_parallel = next(p for p in row["pool"] if p["workers"] == max(workers))
            row["ratio_pool_vs_process_per_mesh"] = same_parallel["meshes_per_s"] / row["process_per_mesh"]["meshes_per_s"]
            row["best_pool_meshes_per_s"] = best
            rows.append(row)
            print(f"{name}: process-per-mesh ({max(workers)} parallel) {n / per_process:.3f} meshes/s; "
                  + ", ".join(f"pool×{p['workers']} {p['meshes_per_s']:.3f}" for p in row["pool"])
                  + f"; pool/process-per-mesh = {row['ratio_pool_vs_process_per_mesh']:.1f}×", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {cores} cores",
        "python": platform.python_version(),
        "rows": rows,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
