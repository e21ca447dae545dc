"""The Blender add-on (``addon/``), end to end, on CPU.

* The extension is built and validated with Blender's own extension CLI (``blender_ext.py`` from
  the bpy wheel), and the zip must hold only the add-on.
* Each scenario runs in a fresh ``python`` subprocess with ``bpy`` (one scene per process; bpy
  cannot be reset): the built zip is installed the way Blender installs extensions
  (``bpy.ops.extensions.package_install_files(repo="user_default", enable_on_install=True)``)
  into a throw-away user folder (``BLENDER_USER_RESOURCES``), then ``bpy.ops.ar3d.generate`` runs.
* The server here is a STAND-IN: a small standard-library HTTP server (:class:`FakeServer`) that
  implements the ``ar3d serve`` API (``/v1/jobs``, ``/v1/jobs/{id}``, results as real GLBs made with
  trimesh, cancel, health, bearer token) so the add-on is tested without a model.
  ``test_real_server`` runs the same flow against a real ``ar3d serve`` and is skipped where
  ``ar3d.server`` cannot be imported.

The stand-in server lives in tests/addon_server.py (run as a script it serves the API: the
local-server test uses it as the "Python with ar3d").
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from addon_server import FakeServer, free_port, port_open, sample_mesh  # tests/ is on sys.path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def _blender_ext() -> Path | None:
    try:
        import importlib.util

        spec = importlib.util.find_spec("bpy")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0])
    hits = sorted(root.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    return hits[-1] if hits else None


BLENDER_EXT = _blender_ext()
needs_bpy = pytest.mark.skipif(BLENDER_EXT is None, reason="bpy (Blender as a Python module) is not installed")


# ---- the bpy driver ------------------------------------------------------------------------------
DRIVER = textwrap.dedent(r'''
    import json, sys, time
    cfg = json.loads(sys.argv[1])
    import bpy
    out = {}
    r = bpy.ops.extensions.package_install_files(filepath=cfg["zip"], repo="user_default", enable_on_install=True)
    ADDON = "bl_ext.user_default.ar3d"
    assert ADDON in bpy.context.preferences.addons, list(bpy.context.preferences.addons.keys())
    ops = sys.modules[ADDON + ".addon.operators"]
    prefs = bpy.context.preferences.addons[ADDON].preferences
    for k, v in cfg.get("prefs", {}).items():
        setattr(prefs, k, v)
    scene = bpy.context.scene
    scene.cursor.location = cfg.get("cursor", (0, 0, 0))
    out["scene_props"] = hasattr(scene, "ar3d")

    def objs():
        return sorted(o.name for o in bpy.data.objects)

    def describe(o):
        ws = [o.matrix_world @ v.co for v in o.data.vertices]
        return {"name": o.name, "verts": len(o.data.vertices), "faces": len(o.data.polygons),
                "location": list(o.location), "min": [min(v[i] for v in ws) for i in range(3)],
                "max": [max(v[i] for v in ws) for i in range(3)],
                "props": {k: o[k] for k in o.keys() if k.startswith("ar3d_")},
                "materials": [m.name for m in o.data.materials if m],
                "collections": [c.name for c in o.users_collection]}

    class FakeLayout:  # records what a panel draws (there is no UI in background mode)
        def __init__(self, texts):
            self.texts = texts
        def __getattr__(self, name):
            def call(*a, **kw):
                if "text" in kw:
                    self.texts.append(str(kw["text"]))
                return FakeLayout(self.texts)
            return call

    class Holder:  # `self` for a draw(): a layout, other attributes from `target`
        def __init__(self, texts, target=None):
            self.layout, self._target = FakeLayout(texts), target
        def __getattr__(self, name):
            return getattr(self._target, name)

    def draw(cls, target=None):
        texts = []
        cls.draw(Holder(texts, target), bpy.context)
        return texts

    def pump(timeout=30):
        t = time.time()
        while ops.STATE.job is not None and time.time() - t < timeout:
            if ops.timer_tick() is None:
                break
            time.sleep(0.05)

    def generate(**kw):
        before = set(bpy.data.objects)
        res = {}
        try:
            res["result"] = sorted(bpy.ops.ar3d.generate(**kw))
        except RuntimeError as e:
            res["error"] = str(e)
        if kw.get("mode") == "ASYNC":
            res["job_status"] = ops.STATE.job.snapshot()["status"] if ops.STATE.job else None
            pump()
        res["message"] = ops.STATE.message
        res["level"] = ops.STATE.level
        res["new"] = [describe(o) for o in bpy.data.objects if o not in before]
        if res["new"]:
            res["selected_panel"] = draw(bpy.types.AR3D_PT_selected)
        res["counts"] = {k: len(getattr(bpy.data, k)) for k in ("objects", "meshes", "materials", "collections", "images")}
        return res

    scenario = cfg["scenario"]
    if scenario == "calls":
        out["calls"] = []
        for call in cfg["calls"]:
            for k, v in call.pop("prefs", {}).items():
                setattr(prefs, k, v)
            out["calls"].append(generate(**call))
    elif scenario == "cancel":
        res = {"before": objs()}
        bpy.ops.ar3d.generate(prompt="a slow lamp", mode="ASYNC")
        t = time.time()
        while time.time() - t < 20:
            ops.timer_tick()
            if ops.STATE.job.snapshot()["status"] == "planning":
                break
            time.sleep(0.05)
        res["status_before_cancel"] = ops.STATE.job.snapshot()["status"]
        res["panel_running"] = draw(bpy.types.AR3D_PT_generate)
        res["plans_seen"] = ops.STATE.job.snapshot()["plans"]
        res["cancel"] = sorted(bpy.ops.ar3d.cancel())
        pump()
        res["after"] = objs()
        res["message"] = ops.STATE.message
        res["job_cleared"] = ops.STATE.job is None
        res["panel_idle"] = draw(bpy.types.AR3D_PT_generate)
        res["prefs_panel"] = draw(type(prefs), prefs)
        out["cancel"] = res
    elif scenario == "local_server":
        out["call"] = generate(prompt="a local cube", **cfg.get("call", {}))
        srv = sys.modules[ADDON + ".addon.local_server"].SERVER
        out["log_path"] = srv.log_path
        out["log"] = open(srv.log_path).read() if srv.log_path else ""
        out["command"] = srv.command
        bpy.ops.preferences.addon_disable(module=ADDON)  # unregister(): must stop the server
        out["running_after_disable"] = srv.running
    out["torch_loaded"] = "torch" in sys.modules
    out["core_loaded"] = sorted(m for m in sys.modules if m.startswith(("ar3d", "bl_ext")) and (m.endswith(".core") or ".core." in m))
    print("AR3D_RESULT " + json.dumps(out))
''')


def run_bpy(tmp_path: Path, zip_path: Path, scenario: str, timeout: float = 60, extra_env=None, **cfg) -> dict:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    home = tmp_path / "blender_home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(home))
    env.pop("PYTHONPATH", None)
    env.pop("OMP_WAIT_POLICY", None)  # whatever this process set: the add-on must set it for its server
    env.update(extra_env or {})
    cfg = dict(cfg, zip=str(zip_path), scenario=scenario)
    proc = subprocess.run([PY, str(script), json.dumps(cfg)], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=tmp_path)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("AR3D_RESULT ")]
    assert proc.returncode == 0 and lines, f"bpy driver failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1][len("AR3D_RESULT "):])


def gltf_to_blender(v):
    """glTF is Y-up; Blender's importer maps (x, y, z) to (x, -z, y)."""
    return (v[0], -v[2], v[1])


def expected_bounds(index: int, location):
    import numpy as np

    verts = np.array([gltf_to_blender(v) for v in sample_mesh(index).vertices])
    return verts.min(0) + np.array(location), verts.max(0) + np.array(location)


# ---- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ext_zip(tmp_path_factory) -> Path:
    if BLENDER_EXT is None:
        pytest.skip("bpy (Blender as a Python module) is not installed")
    out = tmp_path_factory.mktemp("ext")
    build = subprocess.run([PY, str(BLENDER_EXT), "build", "--source-dir", str(REPO), "--output-dir", str(out)],
                           capture_output=True, text=True, timeout=60)
    assert build.returncode == 0, build.stdout + build.stderr
    zips = list(out.glob("ar3d-*.zip"))
    assert len(zips) == 1, build.stdout
    return zips[0]


# ---- tests ---------------------------------------------------------------------------------------
@needs_bpy
def test_extension_builds_validates_and_holds_only_the_addon(ext_zip):
    for target in (ext_zip, REPO):
        val = subprocess.run([PY, str(BLENDER_EXT), "validate", str(target)], capture_output=True, text=True,
                             timeout=60)
        assert val.returncode == 0, val.stdout + val.stderr
        assert "Success" in val.stdout
    names = zipfile.ZipFile(ext_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert "addon/__init__.py" in names and "addon/client.py" in names
    stray = [n for n in names if n not in ("__init__.py", "blender_manifest.toml") and not n.startswith("addon/")]
    assert not stray, f"the extension zip must hold only the add-on, found {stray}"
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    # dependency-free: the add-on imports only the standard library, bpy/bmesh and its own modules
    # (never the ar3d library, torch, numpy, ...)
    import ast

    allowed = set(sys.stdlib_module_names) | {"bpy", "bmesh", "mathutils", "addon_utils"}
    for n in names:
        if not (n.startswith("addon/") and n.endswith(".py")):
            continue
        for node in ast.walk(ast.parse(zipfile.ZipFile(ext_zip).read(n).decode())):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    assert node.level == 1, f"{n}: relative imports must stay inside addon/ ({ast.unparse(node)})"
                    continue
                mods = [node.module]
            else:
                continue
            for m in mods:
                assert m.split(".")[0] in allowed, f"{n} imports {m}: the add-on must be dependency-free"


def test_client_errors_without_bpy():
    """addon.client is pure stdlib: clear messages for refused connections and JSON error bodies."""
    sys.path.insert(0, str(REPO / "addon"))
    try:
        import client as c  # noqa: PLC0415 - the module, loaded without the package (no bpy)
    finally:
        sys.path.pop(0)
    port = free_port()
    with pytest.raises(c.ServerError, match="is not running; start it with `ar3d serve`") as ei:
        c.Client(f"http://127.0.0.1:{port}", timeout=2).health()
    assert ei.value.unreachable
    assert c.is_local_url("http://localhost:1") and c.is_local_url("127.0.0.1:8765")
    assert not c.is_local_url("https://example.com")
    with FakeServer(token="s3cret") as srv:
        with pytest.raises(c.ServerError, match="access token"):
            c.Client(srv.url).submit("a chair")
        cl = c.Client(srv.url, token="s3cret")
        with pytest.raises(c.ServerError, match="422.*prompt must be a non-empty string"):
            cl.submit("   ")
        job = cl.submit("a chair", samples=1, seed=3)
        assert job["status"] == "queued"
        assert cl.job(job["id"])["status"] in ("planning", "coarse", "decoding", "done")
    with FakeServer(slow_get=3) as srv:
        cl = c.Client(srv.url, timeout=0.5)
        jid = cl.submit("x")["id"]
        with pytest.raises(c.ServerError, match="did not answer within 0.5 s"):
            cl.job(jid)


@needs_bpy
def test_generate_one_object_at_the_cursor(ext_zip, tmp_path):
    cursor = (1.0, 2.0, 3.0)
    with FakeServer(token="s3cret") as srv:
        out = run_bpy(tmp_path, ext_zip, "calls", cursor=cursor,
                      prefs={"server_url": srv.url, "token": "s3cret"},
                      calls=[{"prompt": "a   wooden chair", "samples": 1, "seed": 7, "two_step": False,
                              "smoothing": "high"}])
        posts = [r for r in srv.requests if r[0] == "POST" and r[1] == "/v1/jobs"]
    assert out["scene_props"]
    call = out["calls"][0]
    assert "error" not in call, call
    assert call["result"] == ["FINISHED"]
    assert len(call["new"]) == 1, call["new"]
    obj = call["new"][0]
    assert obj["name"] == "a wooden chair"
    assert obj["verts"] == 8 and obj["faces"] == 12
    assert obj["location"] == pytest.approx(cursor)
    lo, hi = expected_bounds(0, cursor)
    assert obj["min"] == pytest.approx(lo, abs=1e-4) and obj["max"] == pytest.approx(hi, abs=1e-4)
    props = obj["props"]
    assert props["ar3d_prompt"] == "a wooden chair"
    assert props["ar3d_seed"] == 7
    assert json.loads(props["ar3d_plans"]) == ["plan for 'a wooden chair' sample 0", "details 0"]
    assert len(props["ar3d_job"]) == 12
    assert "ar3d_score" not in props  # the server sent no score
    assert obj["materials"] == ["ar3d Material"]
    assert obj["collections"] == ["Collection"]
    assert "Prompt: a wooden chair" in call["selected_panel"] and "Seed: 7" in call["selected_panel"]
    # one object, one mesh, our material: the importer's own data-blocks and temp collection are gone
    assert call["counts"]["collections"] == 1
    # the request: prompt, options, and the bearer token
    assert len(posts) == 1
    body = posts[0][2]
    assert body["prompt"] == "a wooden chair" and body["samples"] == 1 and body["seed"] == 7
    assert body["two_step"] is False and body["temperature"] == pytest.approx(0.7)
    assert body["smoothing"] == "high"  # the add-on's smoothing level goes to the server (issue #21)
    assert posts[0][3] == "Bearer s3cret"
    assert not out["torch_loaded"] and not out["core_loaded"]


@needs_bpy
def test_several_samples_side_by_side_best_first(ext_zip, tmp_path):
    cursor = (0.0, -1.0, 0.5)
    with FakeServer(scores=[0.2, 0.9, 0.5]) as srv:
        out = run_bpy(tmp_path, ext_zip, "calls", cursor=cursor, prefs={"server_url": srv.url},
                      calls=[{"prompt": "a stool", "samples": 3}])
    call = out["calls"][0]
    assert "error" not in call, call
    objs = call["new"]
    assert len(objs) == 3
    objs.sort(key=lambda o: o["location"][0])
    # best first: sample 1 (0.9) at the cursor, then sample 2 (0.5), then sample 0 (0.2)
    assert [o["props"]["ar3d_sample"] for o in objs] == [1, 2, 0]
    assert [o["props"]["ar3d_score"] for o in objs] == pytest.approx([0.9, 0.5, 0.2])
    assert "Seed: 1000 (sample 2 of 3)" in call["selected_panel"], call["selected_panel"]  # the best one is active
    assert [o["verts"] for o in objs] == [42, 8, 8]
    assert objs[0]["location"] == pytest.approx(cursor)
    for a, b in zip(objs, objs[1:]):
        assert a["max"][0] < b["min"][0], "side by side, no overlap along X"
        assert b["location"][1:] == pytest.approx(cursor[1:])
    for o in objs:
        lo, hi = expected_bounds(o["props"]["ar3d_sample"], o["location"])
        assert o["min"] == pytest.approx(lo, abs=1e-4) and o["max"] == pytest.approx(hi, abs=1e-4)
        assert o["props"]["ar3d_seed"] == 1000 and o["props"]["ar3d_samples"] == 3  # as the server used it
    assert len({o["props"]["ar3d_job"] for o in objs}) == 1


@needs_bpy
def test_non_blocking_generate_and_cancel(ext_zip, tmp_path):
    """The UI path: the operator returns at once, the timer callback imports; Cancel cancels on the server."""
    with FakeServer(polls_to_done=4) as srv:
        out = run_bpy(tmp_path, ext_zip, "calls", prefs={"server_url": srv.url},
                      calls=[{"prompt": "an async mug", "mode": "ASYNC"}])
    call = out["calls"][0]
    assert call["result"] == ["FINISHED"]
    assert call["job_status"] in ("starting", "queued", "planning"), "the operator must not wait"
    assert len(call["new"]) == 1 and call["new"][0]["props"]["ar3d_prompt"] == "an async mug"
    assert "added 1 object" in call["message"]

    with FakeServer(hang=True) as srv:
        out = run_bpy(tmp_path, ext_zip, "cancel", prefs={"server_url": srv.url})
        cancelled = list(srv.cancelled)
        jobs = list(srv.jobs)
    res = out["cancel"]
    assert res["status_before_cancel"] == "planning"
    assert res["plans_seen"] and "a slow lamp" in res["plans_seen"][0][0]
    assert res["cancel"] == ["FINISHED"]
    assert cancelled == jobs and len(jobs) == 1, "the job must be cancelled on the server"
    assert res["after"] == res["before"], "nothing added"
    assert "cancelled" in res["message"] and res["job_cleared"]
    assert any(t.startswith("Planning") for t in res["panel_running"]), res["panel_running"]
    assert any("Tokens" in t for t in res["panel_running"]) and "Sample 1 plan" in res["panel_running"]
    assert any("cancelled" in t for t in res["panel_idle"]), res["panel_idle"]
    assert any(t.startswith("Log: ") and t.endswith("server.log") for t in res["prefs_panel"]), res["prefs_panel"]

    with FakeServer(hang=True, stopping=True) as srv:  # the server has not stopped the job yet: say so
        out = run_bpy(tmp_path, ext_zip, "cancel", prefs={"server_url": srv.url})
    assert "server is still stopping" in out["cancel"]["message"], out["cancel"]["message"]


@needs_bpy
def test_errors_are_clear_and_add_nothing(ext_zip, tmp_path):
    down = f"http://127.0.0.1:{free_port()}"
    with FakeServer(hang=True) as hang, FakeServer(slow_get=4) as slow, FakeServer(bad_glb=True) as bad, \
            FakeServer(fail="CUDA out of memory") as failing:
        out = run_bpy(tmp_path, ext_zip, "calls", timeout=90, prefs={"server_url": down},
                      calls=[
                          {"prompt": "a chair"},  # server down
                          {"prompt": "a chair", "prefs": {"server_url": hang.url, "generation_timeout": 1.5}},
                          {"prompt": "a chair", "prefs": {"server_url": slow.url, "request_timeout": 1.0,
                                                          "generation_timeout": 60.0}},
                          {"prompt": "a chair", "prefs": {"server_url": bad.url}},
                          {"prompt": "a chair", "prefs": {"server_url": failing.url}},
                          {"prompt": "a chair", "prefs": {"server_url": "https://ar3d.example.com"}},
                          {"prompt": "   ", "prefs": {"server_url": failing.url}},
                      ])
        hang_cancelled = list(hang.cancelled)
        remote_requests = []  # nothing may have been sent anywhere for the online-access case
    calls = out["calls"]
    for c in calls:
        assert "error" in c and not c["new"], c
        assert c["counts"]["objects"] == calls[0]["counts"]["objects"]
        assert c["counts"]["meshes"] == calls[0]["counts"]["meshes"]
        assert c["counts"]["collections"] == calls[0]["counts"]["collections"]
        assert c["level"] == "ERROR" or c is calls[-1]
    assert f"the ar3d server at {down} is not running" in calls[0]["error"]
    assert "ar3d serve" in calls[0]["error"] and "start a local server" in calls[0]["error"]
    assert "timed out after 1.5 s" in calls[1]["error"]
    assert hang_cancelled, "a timed-out job is cancelled on the server"
    assert "did not answer within 1 s" in calls[2]["error"]
    assert "bad mesh file" in calls[3]["error"] and "not a GLB" in calls[3]["error"]
    assert "CUDA out of memory" in calls[4]["error"]
    assert "online access is disabled" in calls[5]["error"]
    assert "type a prompt" in calls[6]["error"]
    assert not remote_requests


def _fake_python(tmp_path: Path) -> Path:
    """A stand-in for 'the Python that has ar3d': `X -m ar3d.cli serve --port P` serves the fake API."""
    exe = tmp_path / "fake_python"
    server = Path(__file__).with_name("addon_server.py").resolve()
    exe.write_text(f"#!/bin/sh\nexec {PY} {server} \"$@\"\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


@needs_bpy
@pytest.mark.skipif(os.name == "nt", reason="uses a shell script as the server's Python")
def test_local_server_started_logged_and_stopped(ext_zip, tmp_path):
    port = free_port()
    out = run_bpy(tmp_path, ext_zip, "local_server",
                  prefs={"server_url": f"http://127.0.0.1:{port}", "start_local_server": True,
                         "python_path": str(_fake_python(tmp_path)), "server_start_timeout": 30.0})
    call = out["call"]
    assert "error" not in call, call
    assert len(call["new"]) == 1 and call["new"][0]["verts"] == 8
    assert out["command"][1:] == ["-m", "ar3d.cli", "serve", "--port", str(port)]
    log = Path(out["log_path"])
    assert log.name == "server.log" and "extensions" in log.parts and "ar3d" in log.parts
    assert "stand-in ar3d server listening" in out["log"]
    assert "OMP_WAIT_POLICY=PASSIVE" in out["log"], "the server must start with OpenMP's passive wait policy"
    assert out["running_after_disable"] is False
    assert not port_open(port), "the local server must stop when the add-on is disabled"


def _real_server_importable() -> bool:
    try:
        import ar3d.server  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


@needs_bpy
@pytest.mark.skipif(not _real_server_importable(), reason="ar3d.server (the real `ar3d serve`) is not available")
def test_real_server(ext_zip, tmp_path):
    """The same flow against a real `ar3d serve` subprocess (started by the add-on's local-server option)."""
    port = free_port()
    out = run_bpy(tmp_path, ext_zip, "local_server", timeout=600, extra_env={"OMP_DISPLAY_ENV": "VERBOSE"},
                  prefs={"server_url": f"http://127.0.0.1:{port}", "start_local_server": True,
                         "python_path": PY, "server_start_timeout": 300.0, "generation_timeout": 500.0},
                  call={"two_step": False, "max_plan_tokens": 8, "seed": 1})
    call = out["call"]
    assert "error" not in call, (call, out.get("log", "")[-3000:])
    assert len(call["new"]) >= 1
    obj = call["new"][0]
    assert obj["verts"] > 0 and obj["props"]["ar3d_prompt"] == "a local cube"
    # OpenMP (libgomp) in the server process started with the passive wait policy: no spinning
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in out["log"] and "GOMP_SPINCOUNT = '0'" in out["log"], out["log"][-3000:]
    assert out["running_after_disable"] is False and not port_open(port)
