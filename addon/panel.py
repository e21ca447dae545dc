"""The 3D viewport sidebar panel (N panel, tab "ar3d")."""

from __future__ import annotations

import textwrap

import bpy

from .local_server import SERVER
from .operators import STATE, busy

STAGE_LABELS = {
    "starting": "Starting", "queued": "Queued", "planning": "Planning", "coarse": "Coarse mesh",
    "refined": "Refined mesh", "decoding": "Decoding", "downloading": "Downloading", "done": "Done",
    "failed": "Failed", "cancelled": "Cancelled",
}


def _wrapped(layout, text: str, width: int = 42, icon: str = "NONE", max_lines: int = 6) -> None:
    lines = textwrap.wrap(text, width) or [""]
    for i, line in enumerate(lines[:max_lines]):
        layout.label(text=line + ("…" if i == max_lines - 1 and len(lines) > max_lines else ""),
                     icon=icon if i == 0 else "BLANK1" if icon != "NONE" else "NONE")


class AR3D_PT_generate(bpy.types.Panel):
    bl_label = "Text to 3D"
    bl_idname = "AR3D_PT_generate"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "ar3d"

    def draw(self, context):
        layout = self.layout
        sc = context.scene.ar3d
        running = busy()
        col = layout.column()
        col.enabled = not running
        col.prop(sc, "prompt", text="")
        row = col.row(align=True)
        row.prop(sc, "two_step", text="Two-Step", toggle=True)
        row.prop(sc, "samples")
        row = col.row(align=True)
        row.prop(sc, "use_seed", text="")
        sub = row.row(align=True)
        sub.active = sc.use_seed
        sub.prop(sc, "seed")

        if not running:
            layout.operator("ar3d.generate", icon="PLAY")
        else:
            snap = STATE.job.snapshot()
            box = layout.box()
            status = snap["status"]
            label = STAGE_LABELS.get(status, status.title())
            if snap["stage"] and snap["stage"] != status:
                label += f" — {snap['stage']}"
            if snap["steps"]:
                label += f" (step {snap['step']}/{snap['steps']})"
            box.label(text=label, icon="TIME")
            if status == "queued" and snap["position"] is not None:
                box.label(text=f"Position in queue: {snap['position']}")
            if snap["tokens_total"]:
                frac = min(1.0, snap["tokens_done"] / max(1, snap["tokens_total"]))
                text = f"Tokens {snap['tokens_done']}/{snap['tokens_total']}"
                if hasattr(box, "progress"):
                    box.progress(factor=frac, type="BAR", text=text)
                else:
                    box.label(text=f"{text} ({100 * frac:.0f}%)")
            if snap["message"] and snap["message"] != status:
                box.label(text=snap["message"])
            box.label(text=f"Elapsed {snap['elapsed']:.0f} s")
            for i, plan in enumerate(snap["plans"]):
                pbox = box.box()
                pbox.label(text=f"Sample {i + 1} plan", icon="TEXT")
                for text in plan:
                    _wrapped(pbox, text, max_lines=8)
            layout.operator("ar3d.cancel", icon="CANCEL")

        if STATE.message and not running:
            icon = {"ERROR": "ERROR", "WARNING": "INFO"}.get(STATE.level, "CHECKMARK")
            _wrapped(layout.box(), STATE.message, icon=icon)
        if SERVER.running:
            layout.label(text=f"Local server: pid {SERVER.proc.pid}", icon="LINKED")


class AR3D_PT_advanced(bpy.types.Panel):
    bl_label = "Sampling"
    bl_idname = "AR3D_PT_advanced"
    bl_parent_id = "AR3D_PT_generate"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "ar3d"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        sc = context.scene.ar3d
        col = self.layout.column()
        col.enabled = not busy()
        col.prop(sc, "temperature")
        col.prop(sc, "top_p")
        col.prop(sc, "top_k")
        col.prop(sc, "max_plan_tokens")
        col.prop(sc, "smoothing")


class AR3D_PT_selected(bpy.types.Panel):
    bl_label = "Generated Object"
    bl_idname = "AR3D_PT_selected"
    bl_parent_id = "AR3D_PT_generate"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "ar3d"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and "ar3d_prompt" in obj

    def draw(self, context):
        import json

        obj = context.active_object
        col = self.layout.column()
        _wrapped(col, f"Prompt: {obj['ar3d_prompt']}")
        if "ar3d_seed" in obj:
            batch = obj.get("ar3d_samples", 1)
            # samples of one job share the batch's seed: sample i of n is reproduced by seed + n samples
            where = f" (sample {obj.get('ar3d_sample', 0) + 1} of {batch})" if batch > 1 else ""
            col.label(text=f"Seed: {obj['ar3d_seed']}{where}")
        if "ar3d_score" in obj:
            col.label(text=f"Score: {obj['ar3d_score']:.4g}")
        try:
            plan = json.loads(obj.get("ar3d_plans", "[]"))
        except (TypeError, ValueError):
            plan = []
        for text in plan if isinstance(plan, list) else []:
            _wrapped(col.box(), str(text), max_lines=10)


CLASSES = (AR3D_PT_generate, AR3D_PT_advanced, AR3D_PT_selected)
