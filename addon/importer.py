"""Import downloaded GLBs as new objects at the 3D cursor (main thread only).

All results are imported first, into a temporary collection; only when every one succeeded are
they moved into the scene. If anything fails, every data-block the import created is removed, so
nothing is left half-inserted.
"""

from __future__ import annotations

import json

import bpy

DATA_KINDS = ("objects", "meshes", "materials", "images", "textures", "node_groups", "cameras",
              "lights", "actions", "curves", "armatures", "collections")
MATERIAL_NAME = "ar3d Material"
VERTEX_COLOR_MATERIAL_NAME = "ar3d Vertex Color Material"


class ImportFailed(RuntimeError):
    pass


def _ids() -> dict[str, set]:
    return {k: set(getattr(bpy.data, k)) for k in DATA_KINDS}


def _new_ids(before: dict[str, set]) -> list:
    out = []
    for k in DATA_KINDS:
        out.extend(i for i in getattr(bpy.data, k) if i not in before[k])
    return out


def _remove(ids) -> None:
    ids = [i for i in ids if i is not None]
    try:
        bpy.data.batch_remove(ids)
    except Exception:  # noqa: BLE001 - fall back to one by one
        for i in ids:
            for k in DATA_KINDS:
                coll = getattr(bpy.data, k)
                try:
                    if i.name in coll and coll[i.name] == i:
                        coll.remove(i)
                        break
                except (ReferenceError, RuntimeError):
                    break


def short_name(prompt: str, limit: int = 48) -> str:
    name = " ".join((prompt or "ar3d").split()) or "ar3d"
    return name if len(name) <= limit else name[: limit - 1].rstrip() + "…"


def simple_material(vertex_colors: bool):
    name = VERTEX_COLOR_MATERIAL_NAME if vertex_colors else MATERIAL_NAME
    mat = bpy.data.materials.get(name)
    if mat is not None:
        return mat
    mat = bpy.data.materials.new(name)
    mat.diffuse_color = (0.8, 0.8, 0.8, 1.0)
    try:
        mat.use_nodes = True  # deprecated (always on) in Blender 5.0
    except Exception:  # noqa: BLE001
        pass
    nt = mat.node_tree
    if nt is not None:
        bsdf = next((n for n in nt.nodes if n.type == "BSDF_PRINCIPLED"), None)
        if bsdf is None:
            bsdf = nt.nodes.new("ShaderNodeBsdfPrincipled")
            out = next((n for n in nt.nodes if n.type == "OUTPUT_MATERIAL"), None) or nt.nodes.new(
                "ShaderNodeOutputMaterial")
            nt.links.new(bsdf.outputs[0], out.inputs[0])
        bsdf.inputs["Base Color"].default_value = (0.8, 0.8, 0.8, 1.0)
        bsdf.inputs["Roughness"].default_value = 0.6
        if vertex_colors:
            attr = nt.nodes.new("ShaderNodeVertexColor")  # "Color Attribute": the active one
            attr.location = (bsdf.location.x - 250, bsdf.location.y)
            nt.links.new(attr.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def _import_one(context, path: str, tmp_layer_coll, name: str):
    """Import one GLB; return a single mesh object (world transform baked into the mesh)."""
    view_layer = context.view_layer
    prev_active = view_layer.active_layer_collection
    view_layer.active_layer_collection = tmp_layer_coll
    before_objs = set(bpy.data.objects)
    try:
        result = bpy.ops.import_scene.gltf(filepath=path, merge_vertices=False)
    except RuntimeError as e:
        raise ImportFailed(f"could not import {path}: {e}") from None
    finally:
        view_layer.active_layer_collection = prev_active
    if "FINISHED" not in result:
        raise ImportFailed(f"could not import {path}: the glTF importer returned {result}")
    new_objs = [o for o in bpy.data.objects if o not in before_objs]
    view_layer.update()
    meshes = [o for o in new_objs if o.type == "MESH" and o.data is not None and len(o.data.vertices)]
    if not meshes:
        raise ImportFailed(f"the mesh file {path} holds no geometry")
    if len(meshes) == 1:
        mesh = meshes[0].data.copy()
        mesh.transform(meshes[0].matrix_world)
    else:
        import bmesh

        bm = bmesh.new()
        for o in meshes:
            tmp = o.data.copy()
            tmp.transform(o.matrix_world)
            bm.from_mesh(tmp)  # from_mesh appends to a non-empty BMesh
            bpy.data.meshes.remove(tmp)
        mesh = bpy.data.meshes.new(name)
        bm.to_mesh(mesh)
        bm.free()
    mesh.name = name
    mesh.materials.clear()
    mesh.materials.append(simple_material(bool(len(getattr(mesh, "color_attributes", ())))))
    for poly in mesh.polygons:
        poly.material_index = 0
    obj = bpy.data.objects.new(name, mesh)
    return obj


def import_results(context, results: list[dict], *, prompt: str, plans: list, job_id: str,
                   collection=None) -> list:
    """Create one object per result, side by side along X from the 3D cursor, best first.

    ``results``: ``{index, path, score, scores, seed, samples}`` dicts, already in display order.
    Returns the new objects (selected, first one active). Raises ImportFailed, leaving nothing.
    """
    scene = context.scene
    if context.mode != "OBJECT" and context.view_layer.objects.active is not None:
        try:
            bpy.ops.object.mode_set(mode="OBJECT")
        except RuntimeError:
            pass
    target = collection or getattr(context, "collection", None) or scene.collection
    cursor = scene.cursor.location.copy()
    before = _ids()
    tmp = bpy.data.collections.new("ar3d_import")
    scene.collection.children.link(tmp)
    tmp_layer = next((lc for lc in context.view_layer.layer_collection.children if lc.collection == tmp), None)
    objects = []
    try:
        base = short_name(prompt)
        for n, r in enumerate(results):
            name = base if len(results) == 1 else f"{base} ({n + 1})"
            obj = _import_one(context, r["path"], tmp_layer, name)
            idx = r.get("index", n)
            obj["ar3d_prompt"] = prompt
            if r.get("seed") is not None:  # the seed the server generated this sample's batch with
                seed = int(r["seed"])
                obj["ar3d_seed"] = seed if seed < 2**31 else str(seed)  # ID properties are 32-bit
            if isinstance(r.get("samples"), int):  # sample i of a batch of n: seed + n reproduce it
                obj["ar3d_samples"] = r["samples"]
            plan = plans[idx] if isinstance(idx, int) and 0 <= idx < len(plans) else (plans if plans else [])
            obj["ar3d_plans"] = json.dumps(plan)
            if isinstance(r.get("score"), (int, float)):
                obj["ar3d_score"] = float(r["score"])
            if r.get("scores"):
                obj["ar3d_scores"] = json.dumps(r["scores"])
            obj["ar3d_job"] = str(job_id)
            obj["ar3d_sample"] = int(idx) if isinstance(idx, int) else n
            obj["ar3d_rank"] = n
            objects.append(obj)
    except BaseException:
        try:
            scene.collection.children.unlink(tmp)
        except RuntimeError:
            pass
        _remove(objects + _new_ids(before))
        raise
    # Everything imported: drop what the importer made (objects, its materials/images) except our meshes.
    keep = {o.data for o in objects} | set(objects)
    scene.collection.children.unlink(tmp)
    leftovers = [i for i in _new_ids(before) if i not in keep and not (
        isinstance(i, bpy.types.Material) and i.name in (MATERIAL_NAME, VERTEX_COLOR_MATERIAL_NAME))]
    _remove(leftovers)

    # lay out side by side along +X: first (best) at the cursor
    x = cursor.x
    gap = 0.0
    for o in objects:
        xs = [v.co.x for v in o.data.vertices]
        gap = max(gap, 0.25 * (max(xs) - min(xs)))
    gap = gap or 0.25
    prev_max = None
    for o in objects:
        xs = [v.co.x for v in o.data.vertices]
        lo, hi = min(xs), max(xs)
        if prev_max is not None:
            x = prev_max + gap - lo
        o.location = (x, cursor.y, cursor.z)
        prev_max = x + hi
    for o in context.view_layer.objects:
        o.select_set(False)
    for o in objects:
        target.objects.link(o)
        o.select_set(True)
    context.view_layer.objects.active = objects[0]
    context.view_layer.update()
    return objects
