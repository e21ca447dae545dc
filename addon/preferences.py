"""Add-on preferences and the per-scene generation settings."""


import os
import tempfile

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .client import DEFAULT_URL, SMOOTHING_ITEMS, is_local_url, url_port
from .local_server import SERVER

# The extension's package (``bl_ext.<repo>.ar3d``, or ``ar3d`` when imported as a plain package).
ADDON_ID = __package__.rsplit(".", 1)[0] if __package__ and "." in __package__ else (__package__ or "ar3d")


def prefs():
    addon = bpy.context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None else None


def user_dir() -> str:
    """The extension's user folder (server log, ...)."""
    try:
        return bpy.utils.extension_path_user(ADDON_ID, create=True)
    except (ValueError, RuntimeError, AttributeError):  # not installed as an extension
        path = os.path.join(tempfile.gettempdir(), "ar3d_blender")
        os.makedirs(path, exist_ok=True)
        return path


def server_log_path() -> str:
    return os.path.join(user_dir(), "server.log")


class AR3D_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    server_url: StringProperty(
        name="Server URL", default=DEFAULT_URL,
        description="Address of the `ar3d serve` HTTP server (local by default)")
    token: StringProperty(
        name="Access Token", default="", subtype="PASSWORD",
        description="Bearer token, when the server was started with one")
    request_timeout: FloatProperty(
        name="Request Timeout", default=30.0, min=1.0, max=600.0, unit="TIME_ABSOLUTE",
        description="Seconds to wait for one HTTP request")
    generation_timeout: FloatProperty(
        name="Generation Timeout", default=900.0, min=1.0, max=24 * 3600.0, unit="TIME_ABSOLUTE",
        description="Seconds a whole generation (queue + model + download) may take before it is cancelled")
    start_local_server: BoolProperty(
        name="Start a Local Server", default=False,
        description="When the server URL is on this computer and nothing answers, start "
                    "`PYTHON -m ar3d.cli serve --port PORT` and stop it when Blender quits")
    python_path: StringProperty(
        name="Python with ar3d", default="", subtype="FILE_PATH",
        description="The Python interpreter of the environment where ar3d (with its server extras) is installed")
    server_start_timeout: FloatProperty(
        name="Server Start Timeout", default=300.0, min=1.0, max=3600.0, unit="TIME_ABSOLUTE",
        description="Seconds to wait for a local server to load its model and answer /v1/health")

    def draw(self, context):
        layout = self.layout
        col = layout.column()
        col.prop(self, "server_url")
        col.prop(self, "token")
        row = col.row(align=True)
        row.prop(self, "request_timeout")
        row.prop(self, "generation_timeout")
        try:
            local = is_local_url(self.server_url)
        except Exception:  # noqa: BLE001
            local = False
        if not local and not bpy.app.online_access:
            box = col.box()
            box.label(text="This server is not on this computer and Blender's online access is off.", icon="ERROR")
            box.label(text="Enable Preferences > System > Network > Allow Online Access to use it.")
        col.separator()
        col.prop(self, "start_local_server")
        sub = col.column()
        sub.active = self.start_local_server
        sub.prop(self, "python_path")
        sub.prop(self, "server_start_timeout")
        if self.start_local_server and not local:
            sub.label(text="A local server needs a localhost server URL.", icon="ERROR")
        row = sub.row(align=True)
        row.operator("ar3d.start_server", icon="PLAY")
        row.operator("ar3d.stop_server", icon="PAUSE")
        row.operator("ar3d.check_server", icon="URL")
        box = sub.box()
        if SERVER.running:
            try:
                port = url_port(self.server_url)
            except Exception:  # noqa: BLE001
                port = "?"
            box.label(text=f"Local server running (pid {SERVER.proc.pid}, port {port})", icon="CHECKMARK")
        else:
            box.label(text="Local server not running (started by this add-on)")
        box.label(text=f"Log: {SERVER.log_path or server_log_path()}")
        for line in SERVER.tail(5).splitlines():
            box.label(text=line[:160])


class AR3D_SceneSettings(bpy.types.PropertyGroup):
    prompt: StringProperty(name="Prompt", default="", description="What to generate, e.g. 'a wooden chair'")
    two_step: BoolProperty(
        name="Two-Step", default=False,
        description="Two-step generation (semantic plan, then detailed description, then mesh); "
                    "off: one step")
    samples: IntProperty(name="Samples", default=1, min=1, max=8,
                         description="How many meshes to generate (laid out side by side, best first)")
    use_seed: BoolProperty(name="Fixed Seed", default=False, description="Use a fixed seed (reproducible)")
    seed: IntProperty(name="Seed", default=0, min=0, description="Random seed")
    temperature: FloatProperty(name="Temperature", default=0.7, min=0.0, max=2.0)
    top_p: FloatProperty(name="Top P", default=0.7, min=0.01, max=1.0)
    top_k: IntProperty(name="Top K", default=8192, min=0)
    max_plan_tokens: IntProperty(name="Max Plan Tokens", default=1022, min=0, max=1022,
                                 description="Most tokens for each plan text")
    smoothing: EnumProperty(name="Smoothing", default="medium", items=SMOOTHING_ITEMS,
                            description="How much the server smooths the mesh's voxel steps")


CLASSES = (AR3D_AddonPreferences, AR3D_SceneSettings)


def register_props():
    bpy.types.Scene.ar3d = PointerProperty(type=AR3D_SceneSettings)


def unregister_props():
    if hasattr(bpy.types.Scene, "ar3d"):
        del bpy.types.Scene.ar3d
