"""Real Ray clusters for tests/test_ray_farm.py, run inside a network namespace of their own.

    unshare -n sh -c 'ip link set lo up; python tests/ray_cluster_check.py SCENARIO WORKDIR'

A head node with 0 CPUs (like a GPU trainer's node: no renders there) plus 1-CPU worker nodes
started by `ray.cluster_utils.Cluster` on this machine. One worker node plays a machine that
shares no filesystem with the caller (AR3D_RAY_NODE_IS_REMOTE=1 in its environment: its actors
treat every caller path as absent, so meshes go to it as bytes and its files come back through
Ray). Writes WORKDIR/result.json with what the test asserts.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path


def meshes(folder: Path, n: int, subdivisions: int = 3) -> list[Path]:
    import trimesh

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"m{i:02d}.ply"
        trimesh.creation.icosphere(subdivisions).apply_scale(1 + 0.05 * i).export(p)
        paths.append(p)
    return paths


class InodeWatch:
    """Every item folder's inode as first seen: a folder renamed into place twice changes it."""

    def __init__(self, out: Path, ids: list[str]):
        self.out, self.ids, self.first, self.stop = out, ids, {}, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            self.look()
            time.sleep(0.02)

    def look(self):
        for i in self.ids:
            if i not in self.first and (self.out / i / "render.json").exists():
                self.first[i] = (self.out / i).stat().st_ino

    def rewritten(self) -> list[str]:
        self.stop.set()
        self.thread.join()
        self.look()
        return [i for i in self.ids if (self.out / i).stat().st_ino != self.first[i]]


def start_cluster(nodes: int, remote_last: bool):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 4}})  # fmt: skip
    workers = []
    for k in range(nodes):
        env = {"AR3D_RAY_NODE_IS_REMOTE": "1"} if remote_last and k == nodes - 1 else {}
        workers.append(cluster.add_node(num_cpus=1, env_vars=env))
    cluster.wait_for_nodes()
    import ray

    ray.init(address=cluster.address, log_to_driver=False)
    return cluster, workers


def scenario_farm(work: Path) -> dict:
    """Trainer interface over Ray, then a farm run interrupted and resumed (one node remote)."""
    import ray
    import trimesh

    from ar3d.headless.farm import collect_items, run_farm
    from ar3d.headless.pool import PoolConfig, open_pool
    from ar3d.headless.ray_pool import RayConfig
    from ar3d.headless.render_config import RenderConfig

    cluster, nodes = start_cluster(2, remote_last=True)
    remote_node = nodes[-1].node_id
    facts: dict = {}
    ray_cfg = RayConfig(address=cluster.address, node_poll_s=0.5)
    # the trainer's and eval's interface: map() of in-memory meshes, submit() with a caller-side then
    cfg = RenderConfig(resolution=32, views="six")
    with open_pool(PoolConfig(timeout_s=120), cfg, backend="ray", ray=ray_cfg) as pool:
        got = pool.map([trimesh.creation.icosphere(2), trimesh.creation.box(), trimesh.creation.cylinder(0.3, 1.0)] * 2)
        facts["map_ok"] = [r.ok for r in got]
        facts["map_shapes"] = [list(r.result.images.shape) for r in got if r.ok]
        box = work / "box.ply"
        trimesh.creation.box().export(box)
        evals = [pool.submit(str(box), then=("ar3d.evaluation._jobs:write_views", (str(work / "eval"), f"s{i}", str(box))))
                 for i in range(4)]  # fmt: skip
        facts["eval_ok"] = [f.result(timeout=300).ok for f in evals]
        facts["eval_written"] = sorted(p.parent.name for p in (work / "eval").glob("*/render.json"))
        facts["map_nodes"] = sorted(pool.jobs_per_node().values())
    # a farm run, stopped after 4 items (Ctrl-C), then resumed
    src = meshes(work / "meshes", 10, subdivisions=2)
    items = collect_items([str(work / "meshes")])
    out = work / "out"
    rcfg = RenderConfig(resolution=48, views="six")

    def stop_after_four(done, total):
        if done >= 4:
            raise KeyboardInterrupt

    try:
        run_farm(items, out, rcfg, PoolConfig(timeout_s=120), progress=stop_after_four, ray=ray_cfg)
    except KeyboardInterrupt:
        pass
    first = sorted(p.parent.name for p in out.glob("*/render.json"))
    facts["interrupted_done"] = len(first)
    facts["partials_after_interrupt"] = [p.name for p in out.rglob(".*partial*")]
    summary = run_farm(items, out, rcfg, PoolConfig(timeout_s=120), ray=ray_cfg)
    facts["resume"] = [summary.rendered, summary.skipped, summary.failed]
    facts["all_done"] = sorted(p.parent.name for p in out.glob("*/render.json")) == sorted(p.stem for p in src)
    facts["files"] = sorted(p.name for p in (out / "m00").iterdir())
    facts["farm_nodes"] = {("remote" if k == remote_node else "shared"): v for k, v in summary.per_node.items()}
    # the command line: ar3d render --ray ADDRESS (a rerun with new settings re-renders on the cluster)
    from ar3d.cli import main

    argv = ["render", str(work / "meshes"), "--out", str(out), "--resolution", "40", "--views", "2", "--ray", cluster.address,
            "--workers-per-node", "1", "-q"]  # fmt: skip
    facts["cli_rc"] = main(argv)
    facts["cli_resolution"] = json.loads((out / "m09" / "render.json").read_text())["settings"]["resolution"]
    ray.shutdown()
    cluster.shutdown()
    return facts


def scenario_node_loss(work: Path) -> dict:
    """Three worker nodes; one is removed while it renders; every item is done exactly once."""
    import ray

    from ar3d.headless.farm import collect_items, run_farm
    from ar3d.headless.pool import PoolConfig
    from ar3d.headless.ray_pool import RayConfig, RayRenderPool
    from ar3d.headless.render_config import RenderConfig

    cluster, nodes = start_cluster(3, remote_last=False)
    victim = nodes[-1]
    meshes(work / "meshes", 12)
    items = collect_items([str(work / "meshes")])
    out = work / "out"
    watch = InodeWatch(out, [it.id for it in items])
    removed = threading.Event()
    facts: dict = {}

    pools = []  # the farm's pool, seen through its public stats() to time the kill
    real_init = RayRenderPool.__init__

    def init(self, *a, **kw):
        real_init(self, *a, **kw)
        pools.append(self)

    RayRenderPool.__init__ = init

    def victim_pids() -> set[int]:
        import psutil

        pids = set()
        for _, proc in victim.live_processes():  # raylet & co; the actors are their children
            try:
                pids |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
            except psutil.NoSuchProcess:
                pass
        return pids

    def remover():  # kill the victim's node (raylet and workers die, no graceful exit) just
        # after its actor took an item, so that item is in flight
        end = time.monotonic() + 240
        while time.monotonic() < end:
            if pools:
                ours = victim_pids()
                for w in pools[0].stats().workers:
                    if w.pid in ours and w.state == "busy" and w.jobs_done >= 1 and (w.job_s or 9) < 0.6:
                        facts["killed_after_s"] = w.job_s
                        for pid in ours:  # as a machine that loses power: its actors and
                            try:  # Blender workers die with the raylet, none finishes its item
                                os.kill(pid, signal.SIGKILL)
                            except ProcessLookupError:
                                pass
                        cluster.remove_node(victim, allow_graceful=False)
                        removed.set()
                        return
            time.sleep(0.02)

    t = threading.Thread(target=remover, daemon=True)
    t.start()
    summary = run_farm(items, out, RenderConfig(resolution=128, views="ring:12"), PoolConfig(timeout_s=120),
                       ray=RayConfig(address=cluster.address, node_poll_s=0.5))  # fmt: skip
    t.join(5)
    facts.update({
        "removed": removed.is_set(),
        "summary": [summary.rendered, summary.skipped, summary.failed],
        "retried": summary.retried,
        "per_node": sorted(summary.per_node.values()),
        "failures": summary.failures,
        "done": len(list(out.glob("*/render.json"))),
        "rewritten": watch.rewritten(),
        "partials": [p.name for p in out.rglob(".*partial*")],
        "runs": sorted({json.loads(p.read_text())["run"] for p in out.glob("*/render.json")}),
    })
    ray.shutdown()
    cluster.shutdown()
    return facts


if __name__ == "__main__":
    name, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    result = {"scenario_farm": scenario_farm, "scenario_node_loss": scenario_node_loss}[name](work)
    (work / "result.json").write_text(json.dumps(result, indent=1, default=str))
