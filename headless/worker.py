"""The render worker process: imports bpy once, serves jobs from the pool over a pipe.

Runs in a process started by the dispatcher (`ar3d.headless.dispatcher`), possibly under another
Python than the caller's (`PoolConfig.python`); importable without bpy. It must not import torch.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable

_PICKLE = pickle.HIGHEST_PROTOCOL


def rss_bytes(pid: int) -> int | None:
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss
    except ImportError:
        pass
    except Exception:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _resolve_target(spec: str, cache: dict) -> Callable:
    if spec in cache:
        return cache[spec]
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise ValueError(f"call target must be 'module:function' or '/path/file.py:function', not {spec!r}")
    if where.endswith(".py") or os.sep in where or "/" in where:
        import importlib.util

        mod_name = f"_ar3d_pool_job_{len(cache)}_{os.path.splitext(os.path.basename(where))[0]}"
        spec_obj = importlib.util.spec_from_file_location(mod_name, where)
        if spec_obj is None or spec_obj.loader is None:
            raise ImportError(f"cannot load {where}")
        module = importlib.util.module_from_spec(spec_obj)
        sys.modules[mod_name] = module
        spec_obj.loader.exec_module(module)
    else:
        import importlib

        module = importlib.import_module(where)
    fn = module
    for part in name.split("."):
        fn = getattr(fn, part)
    cache[spec] = fn
    return fn


class _WorkerRenderer:
    """The worker's one Renderer, built once (at start when preloading, else on first use)."""

    def __init__(self, render_config):
        self.render_config = render_config
        self.renderer = None

    def get(self):
        if self.renderer is None:
            from .render import Renderer

            self.renderer = Renderer(self.render_config) if self.render_config is not None else Renderer()
        return self.renderer

    def render(self, payload, config):
        renderer = self.get()
        if payload[0] == "path":
            mesh = payload[1]
        else:
            import trimesh

            _, vertices, faces, colors = payload
            mesh = trimesh.Trimesh(vertices=vertices, faces=faces, vertex_colors=colors, process=False)
        return renderer.render(mesh, config)

    def reset(self):
        if self.renderer is not None:
            self.renderer.reset()

    def close(self):
        if self.renderer is not None:
            try:
                self.renderer.close()
            except Exception:
                pass


def _is_blender_scripts_dir(path: str) -> bool:
    """.../bpy/5.0/scripts/modules, ~/.config/blender/5.0/scripts/addons/modules, ..."""
    parts = [p.lower() for p in os.path.normpath(path).split(os.sep)]
    if "scripts" not in parts:
        return False
    i = parts.index("scripts")
    version = parts[i - 1] if i else ""
    return (version.replace(".", "").isdigit() and "." in version
            and any(p == "bpy" or p.startswith("blender") for p in parts[: i - 1]))  # fmt: skip


def _clean_sys_path() -> None:
    """Drop Blender's script folders inherited from a caller that imported bpy itself.

    `import bpy` puts `.../bpy/5.0/scripts/modules` (holding a pure-Python `bpy` package) at the
    front of sys.path; the worker gets the caller's sys.path, and the worker's own `import bpy` would
    then find that package first and fail with "No module named '_bpy'". bpy adds them back."""
    if "bpy" not in sys.modules:
        sys.path[:] = [p for p in sys.path if not (p and _is_blender_scripts_dir(p))]


def _orphaned_exit(tmp_dir: str | None) -> None:
    """The caller died without cleaning up: remove our temp folder (and the pool's, if empty)."""
    if tmp_dir:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        try:
            os.rmdir(os.path.dirname(tmp_dir))  # only succeeds for the last worker out
        except OSError:
            pass
    os._exit(3)


def _watch_parent(parent_pid: int, tmp_dir: str | None) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            _orphaned_exit(tmp_dir)


# Run by the dispatcher as `PYTHON -c BOOTSTRAP PKG_DIR CONN_FD SENTINEL_FD`: it loads the
# caller's ar3d package from its folder (whatever the folder is called, and in an interpreter
# that has not installed ar3d: a separate Python with bpy), then serves jobs. Nothing of the
# caller's __main__ is imported, unlike multiprocessing's spawn.
BOOTSTRAP = (
    "import importlib.util, os, sys\n"
    "pkg = sys.argv[1]\n"
    "if 'ar3d' not in sys.modules:\n"
    "    spec = importlib.util.spec_from_file_location('ar3d', os.path.join(pkg, '__init__.py'),"
    " submodule_search_locations=[pkg])\n"
    "    mod = importlib.util.module_from_spec(spec)\n"
    "    sys.modules['ar3d'] = mod\n"
    "    spec.loader.exec_module(mod)\n"
    "from ar3d.headless.worker import main\n"
    "main(int(sys.argv[2]), int(sys.argv[3]))\n"
)


def main(conn_fd: int, sentinel_fd: int) -> None:
    """Read the start message, set sys.path like the caller's (same interpreter), then serve.

    The sentinel's write end stays open until this process is gone: the caller sees EOF on its
    read end however the worker ends (the same trick as multiprocessing's Process.sentinel)."""
    from multiprocessing.connection import Connection

    os.set_inheritable(sentinel_fd, False)  # Blender's own children must not keep it open
    os.set_inheritable(conn_fd, False)
    conn = Connection(conn_fd)
    parent_pid, sys_path, preload, quiet, tmp_dir, config_blob = pickle.loads(conn.recv_bytes())
    if sys_path is not None:
        sys.path[:] = sys_path
    _clean_sys_path()
    worker_main(conn, parent_pid, pickle.loads(config_blob), preload, quiet, tmp_dir)


def worker_main(conn, parent_pid: int, render_config, preload: bool, quiet: bool, tmp_dir: str | None) -> None:
    """Serve jobs until told to stop or the caller is gone (TMPDIR and thread limits are already
    in the environment: Blender and Mesa read them when bpy is imported)."""
    t0 = time.perf_counter()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group
    threading.Thread(target=_watch_parent, args=(parent_pid, tmp_dir), name="parent-watch", daemon=True).start()
    import faulthandler

    faulthandler.enable()  # a segfault prints the Python stack to stderr
    if quiet:
        try:
            sys.stdout.flush()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.close(devnull)
        except OSError:
            pass
    renderer = _WorkerRenderer(render_config)
    preload_error = None
    if preload:
        try:
            renderer.get()
        except Exception as e:  # reported with the first render job, which retries the build
            preload_error = f"{type(e).__name__}: {e}"
    me = os.getpid()
    try:
        conn.send_bytes(pickle.dumps(("ready", me, time.perf_counter() - t0, rss_bytes(me), preload_error), _PICKLE))
    except OSError:
        os._exit(0)
    targets: dict = {}
    while True:
        try:
            msg = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):  # the caller is gone
            renderer.close()
            _orphaned_exit(tmp_dir)
        if msg[0] == "stop":
            break
        _, job_id, kind, blob = msg
        t = time.perf_counter()
        ok, value, error, tb, recycle = True, None, None, None, False
        try:
            if kind == "render":
                payload, config, then = pickle.loads(blob)
                try:
                    value = renderer.render(payload, config)
                    if then is not None:  # e.g. write the files here, send back only a record
                        value = _resolve_target(then[0], targets)(value, *then[1])
                finally:
                    try:
                        renderer.reset()
                    except Exception:
                        recycle = True  # the scene may be in a bad state: replace this worker
            else:
                target, args, kwargs = pickle.loads(blob)
                fn = _resolve_target(target, targets) if isinstance(target, str) else target
                value = fn(*args, **kwargs)
        except Exception as e:
            error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            ok, value, tb = False, None, traceback.format_exc()
        out = None
        if ok:
            try:
                out = pickle.dumps(value, _PICKLE)
            except Exception as e:
                ok, error, tb = False, f"result cannot be sent back: {type(e).__name__}: {e}", traceback.format_exc()
        value = None
        reply = ("done", job_id, ok, out, error, tb, time.perf_counter() - t, rss_bytes(me), recycle)
        try:
            conn.send_bytes(pickle.dumps(reply, _PICKLE))
        except OSError:
            break
        out = reply = None
        if recycle:
            break
    renderer.close()
    try:
        conn.close()
    except OSError:
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip bpy's own teardown: slow and, after many renders, occasionally crashy
