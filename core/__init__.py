"""ar3d.core: prompt → plan + mesh tokens → occupancy → mesh. Needs torch, never bpy."""
