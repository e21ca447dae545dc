"""ar3d.headless: six-view Blender (bpy) renders as a library, a worker pool and a render-farm CLI.

`views` (camera layouts), `render_config` and `render_result` need no bpy; `render` (the
Renderer, with `mesh_input` and `quiet`) needs bpy (extra `render`, Python 3.11);
`pool` runs renders in long-lived worker processes so the caller never imports bpy
(`pool_types`: its settings and results, `dispatcher`: the caller's side, `worker`: the
process); `farm` turns inputs into resumable output folders.
"""
