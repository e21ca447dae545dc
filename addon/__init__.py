"""The ar3d Blender add-on: a thin client of ``ar3d serve`` (standard library only).

Type a prompt in the 3D viewport's sidebar (tab "ar3d") and press Generate: a worker thread talks
to the server while Blender stays responsive; the meshes are imported at the 3D cursor when ready.
Scripts and render farms (background mode) can call ``bpy.ops.ar3d.generate(prompt="a chair")``,
which then waits for the result.

This package must never import ``ar3d.core`` (torch): the model runs in the server process.
"""

from __future__ import annotations

import bpy

from . import operators, panel, preferences

_CLASSES = preferences.CLASSES + operators.CLASSES + panel.CLASSES


def register():
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    preferences.register_props()


def unregister():
    operators.shutdown()
    preferences.unregister_props()
    for cls in reversed(_CLASSES):
        try:
            bpy.utils.unregister_class(cls)
        except RuntimeError:
            pass
