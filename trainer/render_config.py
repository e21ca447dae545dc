"""The ``[render]`` section of the training configuration: how decoded meshes are rendered
for the rewards (``ar3d.headless``'s ``RenderConfig`` + ``PoolConfig``). Kept in its own module
because the render back-end's settings grow with the headless farm, independently of the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .config_io import field_in as _field_in


@dataclass
class RenderSection:
    """Rendering the decoded meshes for the rewards (``ar3d.headless``: ``RenderConfig`` +
    ``PoolConfig``).

    engine: "workbench" (fast OpenGL) | "eevee" | "cycles".
    resolution: square view side in pixels (judges see (resolution/28)² tokens a view).
    views: view layout ("six" = the six views every reward expects).
    background: "transparent" (rewards composite on white) | "white" | "black" | "gray" | [r, g, b].
    options: any other ``RenderConfig`` field (e.g. ``{workbench_aa = "FXAA"}``).
    workers: render processes; None = ``PoolConfig``'s default (min(4, CPUs)).
    timeout_s: per-render limit; a stuck worker is killed and the job retried.
    max_retries: re-runs of a render whose worker crashed or timed out.
    threads_per_worker: CPU threads per renderer; None = CPUs shared out between workers.
    backend: "local" (render processes on this machine) | "ray" (render actors on every node of
        the Ray cluster at ``ray_address``: "auto", "local" or HOST:PORT; a GPU node started
        with ``ray start --num-cpus 0`` renders nothing itself).
    workers_per_node: with "ray", render actors per node; None = the node's CPUs.
    python: the Python with bpy the render workers run under (None: $AR3D_BLENDER_PYTHON, else
        this one), so the training environment itself needs no bpy.
    mesh_workers: processes that turn decoded grids into meshes before rendering (marching
        cubes on the CPU); None = min(8, CPUs − 1) shared out between the training processes of
        the machine, 1 = in the trainer process.
    """

    engine: str = "workbench"
    resolution: int = 512
    views: str | int = "six"
    background: str | list[float] = "transparent"
    options: dict[str, Any] = field(default_factory=dict)
    workers: int | None = None
    timeout_s: float = 300.0
    max_retries: int = 2
    threads_per_worker: int | None = None
    backend: str = "local"
    ray_address: str = "auto"
    workers_per_node: int | None = None
    python: str | None = None
    mesh_workers: int | None = None

    def to_render_config(self):
        from ..headless.render_config import RenderConfig

        bg = tuple(self.background) if isinstance(self.background, list) else self.background
        opts = {k: tuple(v) if isinstance(v, list) else v for k, v in self.options.items()}
        return RenderConfig(engine=self.engine, resolution=self.resolution, views=self.views, background=bg, **opts)

    def to_pool_config(self):
        from ..headless.pool import PoolConfig

        return PoolConfig(workers=self.workers, timeout_s=self.timeout_s, max_retries=self.max_retries,
                          threads_per_worker=self.threads_per_worker, python=self.python)  # fmt: skip

    def open_pool(self):
        """The render pool of this section: local worker processes or Ray render actors."""
        from ..headless.pool import open_pool

        ray = None
        if self.backend == "ray":
            from ..headless.ray_pool import RayConfig

            ray = RayConfig(address=self.ray_address, workers_per_node=self.workers_per_node)
        return open_pool(self.to_pool_config(), self.to_render_config(), self.backend, ray)

    def check(self) -> list[tuple[str, str]]:
        from ..headless.render_config import RenderConfig

        p = []
        known = {f.name for f in fields(RenderConfig)} - {"engine", "resolution", "views", "background"}
        bad = sorted(set(self.options) - known)
        if bad:
            p.append(("options", f"unknown RenderConfig fields {bad}; valid: {sorted(known)}"))
        else:
            try:
                self.to_render_config().validate()
            except (ValueError, TypeError) as e:
                p.append((_field_in(str(e), self, default="options"), str(e)))
        if self.workers is not None and self.workers < 1:
            p.append(("workers", f"must be >= 1 or none (automatic), got {self.workers}"))
        if self.timeout_s <= 0:
            p.append(("timeout_s", f"must be > 0, got {self.timeout_s}"))
        if self.max_retries < 0:
            p.append(("max_retries", f"must be >= 0, got {self.max_retries}"))
        if self.backend not in ("local", "ray"):
            p.append(("backend", f"must be 'local' or 'ray', got {self.backend!r}"))
        if self.mesh_workers is not None and self.mesh_workers < 1:
            p.append(("mesh_workers", f"must be >= 1 or none (automatic), got {self.mesh_workers}"))
        if self.threads_per_worker is not None and self.threads_per_worker < 1:
            p.append(("threads_per_worker", f"must be >= 1 or none, got {self.threads_per_worker}"))
        return p
