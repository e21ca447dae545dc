"""Operators: generate (non-blocking in the UI, synchronous in background mode), cancel, server.

In the UI, ``ar3d.generate`` starts a :class:`~.jobs.Job` whose worker thread talks to the server
(standard-library HTTP only) and returns at once; a ``bpy.app.timers`` callback (main thread)
watches the job, redraws the panel and, when the meshes are downloaded, imports them and pushes one
undo step. In background mode (``blender -b``, bpy as a module) the operator waits for the job in a
loop and imports the results before it returns, so scripts can call it like any other operator.
"""


import time

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from . import importer
from .client import SMOOTHING_ITEMS, Client, ServerError, is_local_url, normalize_url, url_port
from .jobs import Job
from .local_server import SERVER
from .preferences import prefs, server_log_path

TIMER_INTERVAL = 0.2


class _State:
    job: Job | None = None
    scene_name: str = ""
    collection_name: str = ""
    message: str = ""  # last outcome, shown in the panel
    level: str = "INFO"  # INFO | WARNING | ERROR


STATE = _State()


def _settings():
    p = prefs()
    if p is None:  # add-on prefs unavailable (should not happen once registered)
        return dict(url="http://127.0.0.1:8765", token="", request_timeout=30.0, generation_timeout=900.0,
                    start_local=False, python="", start_timeout=300.0)
    return dict(url=p.server_url, token=p.token, request_timeout=p.request_timeout,
                generation_timeout=p.generation_timeout, start_local=p.start_local_server,
                python=p.python_path, start_timeout=p.server_start_timeout)


def make_client(s: dict) -> Client:
    """Build a client; refuse non-local servers when Blender's online access is off."""
    url = normalize_url(s["url"])
    if not is_local_url(url) and not bpy.app.online_access:
        raise ServerError(
            f"online access is disabled in Blender, and the ar3d server {url} is not on this computer; "
            "enable Preferences > System > Network > Allow Online Access, or use a local server "
            "(http://127.0.0.1:8765)")
    return Client(url, token=s["token"], timeout=s["request_timeout"])


def make_ensure_server(s: dict):
    """A callable for the worker thread: check /v1/health, starting a local server when allowed."""
    start_local, python, start_timeout, token = s["start_local"], s["python"], s["start_timeout"], s["token"]
    log_path = server_log_path() if start_local else None  # bpy call: done here, on the main thread

    def ensure(client: Client, job: Job | None = None) -> None:
        try:
            client.health()
            return
        except ServerError as e:
            if not (e.unreachable and start_local):
                raise
        if not is_local_url(client.base_url):
            raise ServerError(f"cannot start a local server for {client.base_url}: the server URL is not "
                              "on this computer (use http://127.0.0.1:PORT)")
        if job is not None:
            job._set(message="starting the local ar3d server…")
        SERVER.start(python, url_port(client.base_url), log_path, token=token)
        SERVER.wait_healthy(client, start_timeout,
                            cancelled=(lambda: job.cancel_requested) if job is not None else (lambda: False))

    return ensure


def _tag_redraw() -> None:
    wm = getattr(bpy.context, "window_manager", None)
    if wm is None:
        return
    for win in wm.windows:
        for area in win.screen.areas:
            if area.type in ("VIEW_3D", "PREFERENCES"):
                area.tag_redraw()


def _apply(job: Job, context=None) -> tuple[str, str, list]:
    """Main thread: turn a finished job into objects (or a message). Returns (level, message, objs)."""
    snap = job.snapshot()
    objs = []
    try:
        if snap["status"] == "cancelled":
            note = snap.get("message") or ""
            detail = f" ({note})" if note.startswith("cancelled here") else ""  # what the server said
            return "WARNING", f"ar3d: generation cancelled{detail}", []
        if snap["error"]:
            return "ERROR", f"ar3d: {snap['error']}", []
        context = context or bpy.context
        collection = bpy.data.collections.get(STATE.collection_name) if STATE.collection_name else None
        if collection is not None and collection not in context.scene.collection.children_recursive:
            collection = None
        try:
            objs = importer.import_results(context, snap["results"], prompt=job.prompt, plans=snap["plans"],
                                           job_id=snap["id"], collection=collection)
        except importer.ImportFailed as e:
            return "ERROR", f"ar3d: {e} (nothing was added)", []
        except Exception as e:  # noqa: BLE001
            return "ERROR", f"ar3d: importing the meshes failed: {type(e).__name__}: {e} (nothing was added)", []
        return "INFO", f"ar3d: added {len(objs)} object(s) for '{job.prompt}' (job {snap['id']})", objs
    finally:
        job.applied = True
        job.cleanup()


def _window_override():
    """A context override with a window showing the job's scene (timers have no window)."""
    wm = bpy.context.window_manager
    scene = bpy.data.scenes.get(STATE.scene_name) if STATE.scene_name else None
    wins = list(wm.windows) if wm is not None else []
    win = next((w for w in wins if scene is None or w.scene == scene), wins[0] if wins else None)
    kw = {}
    if win is not None:
        kw.update(window=win, screen=win.screen)
        area = next((a for a in win.screen.areas if a.type == "VIEW_3D"), None)
        if area is not None:
            region = next((r for r in area.regions if r.type == "WINDOW"), None)
            kw.update(area=area, region=region)
    if scene is not None:
        kw["scene"] = scene
        if win is None or win.scene != scene:
            kw["view_layer"] = scene.view_layers[0]
    return kw


def timer_tick():
    """bpy.app.timers callback (main thread): watch the running job, apply it when finished."""
    job = STATE.job
    if job is None:
        return None
    _tag_redraw()
    if not job.snapshot()["finished"]:
        return TIMER_INTERVAL
    try:
        with bpy.context.temp_override(**_window_override()):
            level, message, objs = _apply(job, bpy.context)
            if objs:
                try:
                    bpy.ops.ed.undo_push(message=f"ar3d: Generate '{job.prompt}'")
                except RuntimeError:
                    pass
    except Exception as e:  # noqa: BLE001 - keep Blender alive, show the error
        level, message = "ERROR", f"ar3d: {type(e).__name__}: {e}"
    STATE.job = None
    STATE.message, STATE.level = message, level
    print(message)
    _tag_redraw()
    return None


def start_job(context, prompt: str, params: dict) -> Job:
    s = _settings()
    client = make_client(s)
    job = Job(prompt=prompt, params=params, client=client, generation_timeout=s["generation_timeout"],
              ensure_server=make_ensure_server(s))
    STATE.job = job
    STATE.scene_name = context.scene.name
    coll = getattr(context, "collection", None)
    STATE.collection_name = coll.name if coll is not None and coll != context.scene.collection else ""
    STATE.message, STATE.level = "", "INFO"
    job.start()
    return job


def busy() -> bool:
    return STATE.job is not None and not STATE.job.applied


PARAMS = ("prompt", "two_step", "samples", "temperature", "top_p", "top_k", "max_plan_tokens", "smoothing")


class AR3D_OT_generate(bpy.types.Operator):
    """Generate meshes from the prompt with the ar3d server (runs in the background; Blender stays responsive)"""

    bl_idname = "ar3d.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER", "UNDO"}

    prompt: StringProperty(name="Prompt", default="", description="Text prompt (default: the scene's ar3d prompt)")
    two_step: BoolProperty(name="Two-Step", default=False)
    samples: IntProperty(name="Samples", default=1, min=1, max=8)
    seed: IntProperty(name="Seed", default=-1, min=-1, description="Random seed; -1: random")
    temperature: FloatProperty(name="Temperature", default=0.7, min=0.0, max=2.0)
    top_p: FloatProperty(name="Top P", default=0.7, min=0.01, max=1.0)
    top_k: IntProperty(name="Top K", default=8192, min=0)
    max_plan_tokens: IntProperty(name="Max Plan Tokens", default=1022, min=0, max=1022)
    smoothing: EnumProperty(name="Smoothing", default="medium", items=SMOOTHING_ITEMS)
    mode: EnumProperty(
        name="Mode", default="AUTO", options={"HIDDEN", "SKIP_SAVE"},
        items=(("AUTO", "Auto", "Non-blocking in the UI, synchronous in background mode"),
               ("SYNC", "Synchronous", "Wait for the result (blocks Blender)"),
               ("ASYNC", "Non-Blocking", "Return at once; a timer imports the result")))

    @classmethod
    def poll(cls, context):
        if busy():
            cls.poll_message_set("a generation is already running")
            return False
        return context.scene is not None

    def _values(self, context) -> tuple[str, dict]:
        sc = getattr(context.scene, "ar3d", None)
        vals = {}
        for name in PARAMS:
            if self.properties.is_property_set(name) or sc is None:
                vals[name] = getattr(self, name)
            else:
                vals[name] = getattr(sc, name)
        if self.properties.is_property_set("seed") or sc is None:
            seed = self.seed if self.seed >= 0 else None
        else:
            seed = sc.seed if sc.use_seed else None
        prompt = " ".join(str(vals.pop("prompt")).split())
        vals["seed"] = seed
        vals["samples"] = max(1, min(8, int(vals["samples"])))
        if vals.get("smoothing") == "medium":  # the default: not sent, so servers older than the field still work
            vals.pop("smoothing")
        return prompt, vals

    def execute(self, context):
        prompt, params = self._values(context)
        if not prompt:
            self.report({"ERROR"}, "ar3d: type a prompt first")
            return {"CANCELLED"}
        sync = self.mode == "SYNC" or (self.mode == "AUTO" and bpy.app.background)
        try:
            job = start_job(context, prompt, params)
        except ServerError as e:
            STATE.message, STATE.level = f"ar3d: {e.message}", "ERROR"
            self.report({"ERROR"}, STATE.message)
            return {"CANCELLED"}
        if not sync:
            if not bpy.app.timers.is_registered(timer_tick):
                bpy.app.timers.register(timer_tick, first_interval=TIMER_INTERVAL, persistent=True)
            self.report({"INFO"}, f"ar3d: generating '{prompt}'…")
            return {"FINISHED"}
        # background / scripts: poll the worker in a loop, then import here (main thread)
        try:
            while not job.snapshot()["finished"]:
                time.sleep(0.05)
        except KeyboardInterrupt:
            job.request_cancel()
            job.thread.join(timeout=10)
        job.thread.join(timeout=10)
        level, message, objs = _apply(job, context)
        STATE.job = None
        STATE.message, STATE.level = message, level
        self.report({level}, message)
        return {"FINISHED"} if objs else {"CANCELLED"}


class AR3D_OT_cancel(bpy.types.Operator):
    """Cancel the running generation (also on the server)"""

    bl_idname = "ar3d.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return busy()

    def execute(self, context):
        STATE.job.request_cancel()
        self.report({"INFO"}, "ar3d: cancelling…")
        return {"FINISHED"}


class AR3D_OT_start_server(bpy.types.Operator):
    """Start the local ar3d server now (PYTHON -m ar3d.cli serve --port PORT), in the background"""

    bl_idname = "ar3d.start_server"
    bl_label = "Start Local Server"

    def execute(self, context):
        s = _settings()
        try:
            url = normalize_url(s["url"])
            if not is_local_url(url):
                raise ServerError(f"a local server needs a localhost server URL, not {url}")
            SERVER.start(s["python"], url_port(url), server_log_path(), token=s["token"])
        except ServerError as e:
            self.report({"ERROR"}, f"ar3d: {e.message}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"ar3d: local server starting (log: {SERVER.log_path})")
        return {"FINISHED"}


class AR3D_OT_stop_server(bpy.types.Operator):
    """Stop the local ar3d server started by this add-on"""

    bl_idname = "ar3d.stop_server"
    bl_label = "Stop Local Server"

    def execute(self, context):
        SERVER.stop()
        self.report({"INFO"}, "ar3d: local server stopped")
        return {"FINISHED"}


class AR3D_OT_check_server(bpy.types.Operator):
    """Ask the server for /v1/health"""

    bl_idname = "ar3d.check_server"
    bl_label = "Check Server"

    def execute(self, context):
        s = _settings()
        try:
            h = make_client(s).health()
        except ServerError as e:
            STATE.message, STATE.level = f"ar3d: {e.message}", "ERROR"
            self.report({"ERROR"}, STATE.message)
            return {"CANCELLED"}
        STATE.message, STATE.level = (f"ar3d: server ok — model {h.get('model', '?')} on "
                                      f"{h.get('device', '?')}"), "INFO"
        self.report({"INFO"}, STATE.message)
        return {"FINISHED"}


CLASSES = (AR3D_OT_generate, AR3D_OT_cancel, AR3D_OT_start_server, AR3D_OT_stop_server, AR3D_OT_check_server)


def shutdown() -> None:
    """On unregister: stop the timer, cancel a running job, stop the local server."""
    if bpy.app.timers.is_registered(timer_tick):
        bpy.app.timers.unregister(timer_tick)
    job = STATE.job
    if job is not None and not job.snapshot()["finished"]:
        job.request_cancel()
        if job.thread is not None:
            job.thread.join(timeout=5)
    if job is not None:
        job.cleanup()
    STATE.job = None
    SERVER.stop()
