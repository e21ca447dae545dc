"""`ar3d serve`: a local HTTP job server around `TextTo3D`, for the Blender add-on and scripts.

FastAPI and uvicorn are optional (``pip install 'ar3d[serve]'``); nothing here is imported by
``ar3d.core``, so the library and the CLI work without them.
"""
