"""Render-farm benchmarks, side by side in one run (six 224² Workbench views per mesh):

1. ar3d's pool (`run_farm`, N workers) vs a bare process per mesh: `python -c` that imports only
   bpy, imports the mesh, renders six views and writes the PNGs (the TRELLIS/Objaverse
   pattern, no ar3d, no torch), N of them in parallel;
2. the Ray farm on a local cluster of 1 and of 2 nodes (1 CPU each, `ray.cluster_utils.Cluster`,
   a 0-CPU head) vs the local pool with as many workers: per-mesh overhead;
3. worker RSS after 200 jobs (one worker, never recycled).

Ray parts re-run this script inside a network namespace (`unshare -n`, loopback only; root).

    .venv/bin/python scripts/bench_farm.py --meshes 96 --workers 2 --out bench_farm.json
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_render import make_meshes  # noqa: E402  (the same six primitives, one GLB each)

BARE = r"""
import math, sys, bpy
src, out, res = sys.argv[-3], sys.argv[-2], int(sys.argv[-1])
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=src)
objs = [o for o in bpy.context.scene.objects if o.type == "MESH"]
import mathutils
pts = [o.matrix_world @ mathutils.Vector(c) for o in objs for c in o.bound_box]
lo = mathutils.Vector([min(p[i] for p in pts) for i in range(3)]); hi = mathutils.Vector([max(p[i] for p in pts) for i in range(3)])
scale = 1.0 / max(hi - lo)
for o in objs:
    o.location = (o.location - (lo + hi) / 2) * scale
    o.scale = o.scale * scale
scene = bpy.context.scene
scene.render.engine = "BLENDER_WORKBENCH"
scene.render.resolution_x = scene.render.resolution_y = res
scene.render.film_transparent = True
scene.render.image_settings.file_format = "PNG"
cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
cam.data.angle = math.radians(40)
scene.collection.objects.link(cam)
scene.camera = cam
track = cam.constraints.new("TRACK_TO")
empty = bpy.data.objects.new("target", None)
scene.collection.objects.link(empty)
track.target = empty
for i, pos in enumerate([(0, -2, 0), (2, 0, 0), (0, 2, 0), (-2, 0, 0), (0, 0, 2), (0, -0.0001, -2)]):
    cam.location = pos
    scene.render.filepath = f"{out}/view_{i:03d}.png"
    bpy.ops.render.render(write_still=True)
"""


def farm(meshes, out: Path, workers: int, ray=None) -> dict:
    from ar3d.headless.farm import collect_items, run_farm
    from ar3d.headless.pool import PoolConfig
    from ar3d.headless.render_config import RenderConfig

    cfg = RenderConfig(engine="workbench", resolution=224, views="six")
    t0 = time.perf_counter()
    s = run_farm(collect_items([str(m) for m in meshes]), out, cfg, PoolConfig(workers=workers), force=True, ray=ray)
    seconds = time.perf_counter() - t0
    if s.failed:
        raise RuntimeError(f"failures: {s.failures[:3]}")
    return {"seconds": seconds, "s_per_mesh": seconds / len(meshes), "per_node": sorted(s.per_node.values())}


def bare_process_per_mesh(meshes, out: Path, parallel: int) -> dict:
    def one(m: Path):
        d = out / m.stem
        d.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-c", BARE, str(m), str(d), "224"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": ""})  # fmt: skip
        assert len(list(d.glob("view_*.png"))) == 6

    t0 = time.perf_counter()
    with ThreadPoolExecutor(parallel) as ex:
        list(ex.map(one, meshes))
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "s_per_mesh": seconds / len(meshes)}


def rss_after(jobs: int) -> dict:
    import trimesh

    from ar3d.headless.pool import PoolConfig, RenderPool
    from ar3d.headless.render_config import RenderConfig

    meshes = [trimesh.creation.icosphere(3), trimesh.creation.torus(1.0, 0.3), trimesh.creation.box()]
    rss = {}
    with RenderPool(PoolConfig(workers=1, max_jobs_per_worker=0), RenderConfig(resolution=224, views="six")) as pool:
        for i, r in pool.imap(meshes[i % 3] for i in range(jobs)):
            assert r.ok, r.error
            rss[i] = r.worker_rss
    return {"jobs": jobs, "rss_mb_after_1": rss[0] / 2**20, "rss_mb_after_all": rss[jobs - 1] / 2**20}


def ray_part(meshes, tmp: Path) -> dict:
    """Inside the network namespace: local pool vs Ray on 1 and 2 one-CPU nodes."""
    import ray
    from ray.cluster_utils import Cluster

    from ar3d.headless.ray_pool import RayConfig

    rows = {}
    for nodes in (1, 2):
        rows[f"local_pool_{nodes}w"] = farm(meshes, tmp / f"local{nodes}", nodes)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        for _ in range(nodes):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        try:
            # cold: actors and their Blender workers start inside the timing, as the local pool's do
            rows[f"ray_{nodes}node"] = farm(meshes, tmp / f"ray{nodes}", nodes, RayConfig(address=cluster.address))
            rows[f"ray_{nodes}node_again"] = farm(meshes, tmp / f"again{nodes}", nodes, RayConfig(address=cluster.address))
        finally:
            ray.shutdown()
            cluster.shutdown()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meshes", type=int, default=96)
    ap.add_argument("--ray-meshes", type=int, default=48)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rss-jobs", type=int, default=200)
    ap.add_argument("--skip", nargs="*", default=[], choices=["bare", "ray", "rss"])
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--ray-inside", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ray_inside:  # re-executed in the namespace
        tmp = Path(args.ray_inside)
        res = ray_part(sorted((tmp / "meshes").glob("*.glb"))[: args.ray_meshes], tmp)
        (tmp / "ray.json").write_text(json.dumps(res))
        return
    tmp = Path(tempfile.mkdtemp(prefix="ar3d_bench_farm_"))
    result = {
        "date": datetime.datetime.now().isoformat(timespec="minutes"),
        "machine": f"{platform.node()} {platform.machine()}, {len(os.sched_getaffinity(0))} cores, shared",
        "load_avg_start": os.getloadavg(),
        "meshes": args.meshes, "workers": args.workers,
    }  # fmt: skip
    try:
        meshes = make_meshes(tmp / "meshes", max(args.meshes, args.ray_meshes))
        pool = farm(meshes[: args.meshes], tmp / "pool", args.workers)
        result["pool"] = pool
        print(f"pool ({args.workers} workers): {pool['s_per_mesh']:.3f} s/mesh", flush=True)
        if "bare" not in args.skip:
            bare = bare_process_per_mesh(meshes[: args.meshes], tmp / "bare", args.workers)
            result["bare_process_per_mesh"] = bare
            result["ratio_pool_vs_bare"] = bare["seconds"] / pool["seconds"]
            print(f"bare bpy process per mesh ({args.workers} parallel): {bare['s_per_mesh']:.3f} s/mesh; "
                  f"pool is {result['ratio_pool_vs_bare']:.1f}x faster", flush=True)  # fmt: skip
        if "ray" not in args.skip:
            cmd = f'ip link set lo up && exec "{sys.executable}" "{__file__}" --ray-inside "{tmp}" --ray-meshes {args.ray_meshes}'
            env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
            subprocess.run(["unshare", "-n", "sh", "-c", cmd], check=True, env=env)
            ray_rows = json.loads((tmp / "ray.json").read_text())
            result["ray"] = ray_rows
            for n in (1, 2):
                local, on_ray = ray_rows[f"local_pool_{n}w"], ray_rows[f"ray_{n}node"]
                result[f"ray_overhead_{n}node"] = on_ray["s_per_mesh"] / local["s_per_mesh"] - 1
                print(f"{n} node(s): local pool {local['s_per_mesh']:.3f} s/mesh, Ray {on_ray['s_per_mesh']:.3f} s/mesh "
                      f"({100 * result[f'ray_overhead_{n}node']:+.1f}%)", flush=True)  # fmt: skip
        if "rss" not in args.skip:
            result["rss"] = rss_after(args.rss_jobs)
            print(f"worker RSS: {result['rss']['rss_mb_after_1']:.0f} MB after 1 job, "
                  f"{result['rss']['rss_mb_after_all']:.0f} MB after {args.rss_jobs}", flush=True)  # fmt: skip
        result["load_avg_end"] = os.getloadavg()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
