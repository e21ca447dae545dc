"""Render a mesh from several views with Blender as a Python module (bpy), headless.

    from ar3d.headless.render import Renderer, RenderConfig
    result = Renderer(RenderConfig(engine="workbench", resolution=224)).render("chair.glb")
    result.images      # uint8 [V, H, W, 4]
    result.write("out/")  # view_000.png …, grid.png, transforms.json

Importing this module never imports bpy; bpy is imported by ``Renderer()``, which raises
``OptionalDependencyError`` (an ``Ar3dError``) with the install line when it is missing.
bpy holds one scene per process and renders on one thread of Python: use one ``Renderer`` per
process and several processes (``ar3d.headless.pool``) for parallel work.

Conventions
-----------
* **Frame.** ar3d meshes are z-up, which is Blender's scene frame, so vertices go into Blender
  as they are (front faces -Y). Cameras and their matrices are described in ``views``.
* **Normalisation** (``RenderConfig.normalize``, on by default), as TRELLIS-style evaluations do:
  the centre of the axis-aligned bounding box goes to the origin and the mesh is scaled by
  ``1 / max extent``, so it fits ``[-0.5, 0.5]^3`` touching two faces of the cube.
  ``normalize_mesh`` returns ``(mesh, scale, offset)`` with ``v' = v * scale + offset``.
* **Images.** ``RenderResult.images`` is uint8 RGBA in display space (sRGB, Blender's
  "Standard" view transform, so a material colour of 0.8 under full light stays 0.8, not AgX's
  tone-mapped look). Blender renders with a transparent film; ``alpha`` holds its coverage
  (anti-aliased, straight alpha). With ``background="transparent"`` the image's alpha channel
  is that coverage; with an opaque background the colour is composited over the background
  *in display space* and the image's alpha is 255 everywhere (the coverage stays in
  ``RenderResult.alpha``).
* **Mask** is ``alpha >= 128`` (at least half of the pixel covered).
* **Depth** (``passes=("depth",)``): float32, the distance along the camera's view axis
  (the camera-space ``-z``, not the ray length), in the normalised object's units;
  ``inf`` where the pixel holds no object. Depth is not anti-aliased: an edge pixel holds the
  depth of the surface its (first) sample hit, or ``inf`` where that sample missed even though
  its alpha is above 0.
* **Normal** (``passes=("normal",)``, Eevee and Cycles only: Workbench has no normal pass):
  float32 world-space normals, renormalised to unit length (edge pixels average the samples),
  0 where no surface was hit.
* **Lighting.** Workbench uses its studio lighting (``lighting="flat"``: flat shading).
  Eevee and Cycles use a camera-relative three-point rig, re-aimed for every view so that all
  views are lit alike: a key area light up-left-front of the object, a fill light to the right,
  a rim light behind, plus a uniform white world ambient. ``lighting="flat"`` there keeps the
  world ambient only (a bright, shadowless look, ambient-occlusion-like in Cycles).
* **Determinism.** Same mesh and settings give the same pixels with Workbench, and with Cycles
  on the CPU with a fixed ``seed`` (denoised or not). Cycles on a GPU is not promised to be.

How pixels come back
--------------------
Blender's "Render Result" image has no readable pixels in background mode, so each view is
rendered with ``write_still`` to a PNG in a private temporary folder and read back with Pillow.
Depth and normal go through the compositor (bpy 5.0: ``scene.compositing_node_group``, a
``CompositorNodeTree`` whose File Output node writes one single-layer float EXR per pass and
view); each EXR is read back through ``bpy.data.images.load`` and ``pixels.foreach_get`` and
then removed again.

Around the ``Renderer`` (this module, the only one that touches bpy): ``render_config``
(``RenderConfig``), ``render_result`` (``RenderResult``, its files, ``grid_image``),
``mesh_input`` (reading and ``normalize_mesh``) and ``quiet`` (Blender's C output to a log).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Union

import numpy as np
import trimesh

from ..core.errors import Ar3dError
from ..core.mesh import OptionalDependencyError
from .mesh_input import MeshImportError, as_trimesh, normalize_mesh
from .quiet import redirect_fds
from .render_config import CYCLES_GPU_BACKENDS, ENGINES, RenderConfig, _rgb
from .render_result import RenderResult, result_from_views
from .views import Camera, look_at

# RenderConfig, RenderResult and MeshImportError are re-exported: they are the Renderer's API.
__all__ = ["Renderer", "RenderError", "RenderConfig", "RenderResult", "MeshImportError"]

# The three-point rig, in the frame of the camera looking at its target from distance d = 2:
# x right, y up, z towards the camera; each light sits at target + offset * d / 2 and aims at the
# target. Powers in watts for a 1 m square area light; scaled by (d / 2)^2 so exposure does not
# depend on the camera's distance.
_RIG = (
    ("key", (-1.6, 1.6, 1.4), 35.0),
    ("fill", (1.8, 0.1, 1.2), 12.0),
    ("rim", (0.4, 1.6, -1.8), 40.0),
)
_AMBIENT = 0.15  # world background strength (white) under the rig
_CLIP_START, _CLIP_END = 0.01, 1000.0
_FLAT_AMBIENT = 1.0


class RenderError(Ar3dError, RuntimeError):
    """Blender could not render (bad setting for this engine, no GPU where one was demanded…)."""


def _import_bpy():
    try:
        import bpy  # noqa: F401
    except ImportError as e:
        raise OptionalDependencyError(
            "rendering needs Blender as a Python module: pip install 'ar3d[render]' "
            f"(bpy 5.0, Python 3.11 only); import bpy failed: {e}"
        ) from e
    if bpy.app.version < (5, 0, 0):
        raise OptionalDependencyError(
            f"ar3d.headless.render needs bpy >= 5.0 (its compositor API), found {bpy.app.version_string}"
        )
    return bpy


# ----------------------------------------------------------------------------------------------
# the renderer


class Renderer:
    """One Blender scene, set up once, that renders mesh after mesh.

    ``Renderer()`` wipes the process's bpy scene (factory settings, empty) and builds a camera,
    the light rig, a world and one material. ``render()`` imports the mesh from its arrays,
    renders every view, and removes the mesh again (``reset()``), so memory stays flat.
    bpy has one scene per process: a second Renderer in the same process takes the scene over.
    """

    _JOB = "ar3d_job"
    _owner: "Renderer | None" = None  # the Renderer whose scene bpy holds now (one per process)

    def __init__(self, config: RenderConfig = RenderConfig()):
        self.config = replace(config).validate()
        self.bpy = bpy = _import_bpy()
        Renderer._owner = self  # any older Renderer's data-block references die with the reset
        self._tmp = Path(tempfile.mkdtemp(prefix="ar3d_render_"))
        self._log = self._tmp / "blender.log"
        self._gpu: tuple[str, str] | None = None  # (backend, device names), once probed
        self._gpu_probed = False
        with self._quiet(self.config.quiet):
            bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = self.scene = bpy.context.scene
        scene.render.resolution_percentage = 100
        scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
        scene.render.film_transparent = True
        scene.render.use_file_extension = True
        settings = scene.render.image_settings
        settings.file_format = "PNG"
        settings.color_mode = "RGBA"
        settings.color_depth = "8"
        settings.compression = 0  # a private temporary file read straight back: skip deflate
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.look = "None"
        scene.display.shading.color_type = "MATERIAL"

        cam_data = bpy.data.cameras.new("ar3d_camera")
        cam_data.sensor_fit = "HORIZONTAL"
        cam_data.clip_start = _CLIP_START
        cam_data.clip_end = _CLIP_END
        self.camera = bpy.data.objects.new("ar3d_camera", cam_data)
        scene.collection.objects.link(self.camera)
        scene.camera = self.camera

        self.lights = []
        for name, _, _ in _RIG:
            data = bpy.data.lights.new(f"ar3d_{name}", "AREA")
            data.size = 1.0
            obj = bpy.data.objects.new(f"ar3d_{name}", data)
            scene.collection.objects.link(obj)
            self.lights.append(obj)

        world = scene.world = bpy.data.worlds.new("ar3d_world")
        self._world_bg = next(n for n in world.node_tree.nodes if n.bl_idname == "ShaderNodeBackground")
        self._world_bg.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)

        self.material = bpy.data.materials.new("ar3d_material")
        self.material.use_fake_user = True  # survives orphans_purge() between jobs
        self._bsdf = next(n for n in self.material.node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
        self._bsdf.inputs["Roughness"].default_value = 0.6

        self._compositor = None  # built on the first render that asks for passes
        self._object = None
        self._mesh = None

    # -- context management -----------------------------------------------------------------

    def close(self) -> None:
        """Remove the last job and the temporary folder. The Renderer is unusable afterwards."""
        if getattr(self, "_tmp", None) is not None:
            try:
                if Renderer._owner is self:
                    self.reset()
                    Renderer._owner = None
            finally:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------------

    def _quiet(self, quiet: bool):
        return redirect_fds(self._log if quiet else None)

    def _log_tail(self, n: int = 2000) -> str:
        try:
            return self._log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def _probe_gpu(self) -> tuple[str, str] | None:
        """The first Cycles GPU back-end with a device, as (backend, names); None for none."""
        if self._gpu_probed:
            return self._gpu
        prefs = self.bpy.context.preferences.addons["cycles"].preferences
        found = None
        for backend in CYCLES_GPU_BACKENDS:
            try:
                prefs.compute_device_type = backend
            except TypeError:  # this build/platform does not have that back-end at all
                continue
            devices = prefs.get_devices_for_type(backend)
            gpus = [d for d in devices if d.type == backend]
            if gpus:
                for d in devices:
                    d.use = d.type == backend
                found = (backend, ", ".join(d.name for d in gpus))
                break
        if found is None:
            prefs.compute_device_type = "NONE"
        self._gpu, self._gpu_probed = found, True
        return found

    def _apply(self, cfg: RenderConfig) -> str:
        """Put ``cfg`` into the scene; returns the device string."""
        scene = self.scene
        r = scene.render
        r.engine = ENGINES[cfg.engine]
        r.resolution_x = r.resolution_y = int(cfg.resolution)
        rgb = _rgb(cfg.color, "color")
        self._bsdf.inputs["Base Color"].default_value = rgb + (1.0,)
        self.material.diffuse_color = rgb + (1.0,)
        flat = cfg.lighting == "flat"
        self._world_bg.inputs["Strength"].default_value = _FLAT_AMBIENT if flat else _AMBIENT
        for light in self.lights:
            light.hide_render = flat
        device = self.bpy.context.preferences.system.gpu_backend
        if cfg.engine == "workbench":
            shading = scene.display.shading
            shading.light = "FLAT" if flat else "STUDIO"
            shading.color_type = "MATERIAL"
            scene.display.render_aa = str(cfg.workbench_aa)
        elif cfg.engine == "eevee":
            scene.eevee.taa_render_samples = int(cfg.samples)
        else:
            cy = scene.cycles
            cy.samples = int(cfg.samples)
            cy.seed = int(cfg.seed)
            cy.use_animated_seed = False
            cy.use_denoising = bool(cfg.denoise)
            gpu = None if cfg.device == "cpu" else self._probe_gpu()
            if gpu is None and cfg.device == "gpu":
                raise RenderError(
                    f"device='gpu' but Cycles found no GPU ({' / '.join(CYCLES_GPU_BACKENDS)}); "
                    "use device='auto' or 'cpu'"
                )
            if gpu is None:
                cy.device = "CPU"
                device = "CPU"
                threads = int(os.environ.get("AR3D_RENDER_THREADS", "0"))
                r.threads_mode = "FIXED" if threads else "AUTO"  # the pool shares the cores out
                if threads:
                    r.threads = threads
            else:
                self.bpy.context.preferences.addons["cycles"].preferences.compute_device_type = gpu[0]
                cy.device = "GPU"
                device = f"{gpu[0]}: {gpu[1]}"
        self._setup_passes(cfg)
        return device

    def _setup_passes(self, cfg: RenderConfig) -> None:
        scene = self.scene
        layer = scene.view_layers[0]
        want = set(cfg.passes)
        layer.use_pass_z = "depth" in want
        layer.use_pass_normal = "normal" in want
        if not want:
            scene.compositing_node_group = None
            scene.render.use_compositing = False
            return
        if self._compositor is None:
            tree = self.bpy.data.node_groups.new("ar3d_passes", "CompositorNodeTree")
            tree.use_fake_user = True  # survives orphans_purge() while no render uses passes
            layers = tree.nodes.new("CompositorNodeRLayers")
            out = tree.nodes.new("CompositorNodeOutputFile")
            out.directory = str(self._tmp) + os.sep
            out.file_name = "pass_"
            out.format.media_type = "IMAGE"
            out.format.file_format = "OPEN_EXR"
            out.format.color_depth = "32"
            out.file_output_items.new("FLOAT", "depth")
            out.file_output_items.new("VECTOR", "normal")
            self._compositor = (tree, layers, out)
        tree, layers, out = self._compositor
        for link in list(tree.links):
            tree.links.remove(link)
        if "depth" in want:
            tree.links.new(layers.outputs["Depth"], out.inputs["depth"])
        if "normal" in want:
            tree.links.new(layers.outputs["Normal"], out.inputs["normal"])
        scene.compositing_node_group = tree
        scene.render.use_compositing = True

    def _import(self, mesh: trimesh.Trimesh, cfg: RenderConfig) -> None:
        bpy = self.bpy
        verts = np.ascontiguousarray(mesh.vertices, dtype=np.float32)
        faces = np.ascontiguousarray(mesh.faces, dtype=np.int32)
        me = bpy.data.meshes.new(self._JOB)
        self._mesh = me
        me.vertices.add(len(verts))
        me.vertices.foreach_set("co", verts.ravel())
        me.loops.add(faces.size)
        me.loops.foreach_set("vertex_index", faces.ravel())
        me.polygons.add(len(faces))
        me.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
        me.update(calc_edges=True)
        if cfg.smooth_angle_deg is None:
            me.shade_flat()
        else:
            me.shade_smooth()
            me.set_sharp_from_angle(angle=math.radians(cfg.smooth_angle_deg))
        me.materials.append(self.material)
        obj = bpy.data.objects.new(self._JOB, me)
        self.scene.collection.objects.link(obj)
        self._object = obj

    def _place(self, cam: Camera) -> None:
        from mathutils import Matrix

        c2w = cam.c2w()
        self.camera.matrix_world = Matrix(c2w.tolist())
        self.camera.data.angle = math.radians(cam.fov_deg)
        d = cam.distance
        target = np.asarray(cam.target)
        for light, (_, offset, power) in zip(self.lights, _RIG):
            pos = target + c2w[:3, :3] @ (np.asarray(offset) * d / 2.0)
            light.matrix_world = Matrix(look_at(pos, target, c2w[:3, 1]).tolist())
            light.data.energy = power * (d / 2.0) ** 2

    def _read_exr(self, path: Path) -> np.ndarray:
        img = self.bpy.data.images.load(str(path), check_existing=False)
        try:
            w, h = img.size
            px = np.empty(w * h * img.channels, dtype=np.float32)
            img.pixels.foreach_get(px)
        finally:
            self.bpy.data.images.remove(img)
        return px.reshape(h, w, -1)[::-1]

    def _render_view(self, cfg: RenderConfig, index: int):
        png = self._tmp / "view.png"
        depth_path, normal_path = self._tmp / "pass_depth.exr", self._tmp / "pass_normal.exr"
        for p in (png, depth_path, normal_path):
            if p.exists():
                p.unlink()
        self.scene.render.filepath = str(png)
        try:
            with self._quiet(cfg.quiet):
                self.bpy.ops.render.render(write_still=True)
        except RuntimeError as e:
            raise RenderError(f"Blender failed to render view {index} with {cfg.engine}: {e}\n{self._log_tail()}") from e
        if not png.exists():
            raise RenderError(f"Blender wrote no image for view {index} ({cfg.engine})\n{self._log_tail()}")
        from PIL import Image

        with Image.open(png) as im:
            rgba = np.array(im.convert("RGBA"))
        depth = normal = None
        if "depth" in cfg.passes:
            depth = self._read_exr(depth_path)[..., 0]
        if "normal" in cfg.passes:
            normal = self._read_exr(normal_path)[..., :3]
        return rgba, depth, normal

    # -- public --------------------------------------------------------------------------------

    def _check_owner(self) -> None:
        if self._tmp is None:
            raise RenderError("this Renderer is closed")
        if Renderer._owner is not self:
            # its Python references to Blender data are dangling: touching them would crash
            raise RenderError("another Renderer has taken over this process's bpy scene; use that one")

    def reset(self) -> None:
        """Remove the last job's object and mesh data and purge orphan data blocks."""
        self._check_owner()
        bpy = self.bpy
        if self._object is not None:
            bpy.data.objects.remove(self._object, do_unlink=True)
            self._object = None
        if self._mesh is not None:
            bpy.data.meshes.remove(self._mesh)
            self._mesh = None
        for coll in (bpy.data.objects, bpy.data.meshes):  # anything left by an interrupted job
            for block in [b for b in coll if b.name.startswith(self._JOB)]:
                coll.remove(block)
        for img in list(bpy.data.images):
            if img.users == 0:
                bpy.data.images.remove(img)
        bpy.data.orphans_purge(do_local_ids=True, do_linked_ids=True, do_recursive=True)

    def render(self, mesh: Union[trimesh.Trimesh, str, Path], config: RenderConfig | None = None) -> RenderResult:
        """Render ``mesh`` (a trimesh, or a GLB/OBJ/PLY/STL file read with ``load_mesh``) from
        every view of ``config`` (default: the Renderer's). Raises MeshImportError for a file
        that cannot be read, RenderError when Blender fails."""
        self._check_owner()
        t0 = time.perf_counter()
        cfg = replace(config).validate() if config is not None else self.config
        cameras = cfg.cameras()
        fovs = {c.fov_deg for c in cameras}
        if len(fovs) != 1:
            raise ValueError(f"all views of one render must share one fov_deg, got {sorted(fovs)}")
        fov = fovs.pop()
        tri = as_trimesh(mesh)
        scale, offset = 1.0, np.zeros(3)
        if cfg.normalize:
            tri, scale, offset = normalize_mesh(tri)
        self.reset()
        if self._log.exists():  # the log holds the current job only (shown in RenderError)
            self._log.unlink()
        try:
            with self._quiet(cfg.quiet):
                device = self._apply(cfg)
            self._import(tri, cfg)
            rgba, depths, normals, view_seconds = [], [], [], []
            for i, cam in enumerate(cameras):
                tv = time.perf_counter()
                self._place(cam)
                img, depth, normal = self._render_view(cfg, i)
                rgba.append(img)
                depths.append(depth)
                normals.append(normal)
                view_seconds.append(time.perf_counter() - tv)
        finally:
            self.reset()
        return result_from_views(cfg, cameras, fov, rgba, depths, normals, device, scale, offset, view_seconds, t0, _CLIP_END)
