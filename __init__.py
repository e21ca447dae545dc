"""ar3d: text-to-3D generation with ShapeLLM-Omni / AR3D-R1 and Hi-GRPO.

This folder is both the Python package ``ar3d`` and the Blender extension root. Blender calls
``register()``/``unregister()``; they import the add-on lazily so that ``import ar3d.core`` never
needs ``bpy`` (and the GPU machines, which have no bpy, can use the library).
"""

__version__ = "0.1.0"


def register():  # pragma: no cover - exercised by the Blender add-on tests
    from .addon import register as _register

    _register()


def unregister():  # pragma: no cover
    from .addon import unregister as _unregister

    _unregister()
