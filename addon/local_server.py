"""Start and stop a local ``ar3d serve`` subprocess (no ``bpy`` here).

The add-on runs ``PYTHON -m ar3d.cli serve --port PORT``, waits for ``/v1/health``, keeps the
server's output in a log file in the extension's user folder and stops the process when the
add-on is unregistered or Blender quits (``atexit``).
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import threading
import time

from .client import Client, ServerError


class LocalServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.log_path: str | None = None
        self.command: list[str] = []
        self._log_file = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, python: str, port: int, log_path: str, token: str = "") -> None:
        with self._lock:
            if self.running:
                return
            python = os.path.expanduser((python or "").strip())
            if not python:
                raise ServerError("set the Python that has ar3d installed (add-on preferences) to start a local server")
            if not (os.path.isfile(python) and os.access(python, os.X_OK)):
                raise ServerError(f"cannot start a local ar3d server: {python!r} is not an executable Python")
            os.makedirs(os.path.dirname(log_path), exist_ok=True)
            self.log_path = log_path
            self.command = [python, "-m", "ar3d.cli", "serve", "--port", str(int(port))]
            self._close_log()
            self._log_file = open(log_path, "ab", buffering=0)  # noqa: SIM115 - lives with the process
            self._log_file.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.command)}\n".encode())
            kw = {}
            if os.name == "nt":
                kw["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
            else:
                kw["start_new_session"] = True
            env = dict(os.environ)
            env.setdefault("PYTHONUNBUFFERED", "1")
            # Next to Blender the cores are shared: OpenMP threads that spin while they wait make
            # generation 10-50x slower (ar3d.core.threads). libgomp reads this once, at start-up.
            env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            if (token or "").strip():  # the server reads its bearer token from this variable
                env["AR3D_SERVER_TOKEN"] = token.strip()
            try:
                self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=self._log_file,
                                             stderr=subprocess.STDOUT, env=env, **kw)
            except OSError as e:
                self._close_log()
                raise ServerError(f"cannot start a local ar3d server ({' '.join(self.command)}): {e}") from e

    def wait_healthy(self, client: Client, timeout: float, cancelled=lambda: False) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if cancelled():
                raise ServerError("cancelled while the local ar3d server was starting")
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerError(f"the local ar3d server exited with code {self.proc.returncode}; "
                                  f"see its log {self.log_path}: {self.tail(3) or '(empty)'}")
            try:
                return client.health(timeout=2.0)
            except ServerError as e:
                last = e
            time.sleep(0.2)
        raise ServerError(f"the local ar3d server did not become healthy within {timeout:g} s "
                          f"(last: {last.message if last else '-'}); see its log {self.log_path}")

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            proc, self.proc = self.proc, None
            if proc is not None and proc.poll() is None:
                for force in (False, True):  # SIGTERM, then SIGKILL if it does not exit in time
                    _signal(proc, force)
                    try:
                        proc.wait(timeout)
                        break
                    except subprocess.TimeoutExpired:
                        pass
            self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            try:
                self._log_file.close()
            except OSError:
                pass
            self._log_file = None

    def tail(self, n: int = 5) -> str:
        if not self.log_path or not os.path.isfile(self.log_path):
            return ""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 8192))
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join(line for line in lines[-n:])


SERVER = LocalServer()
atexit.register(SERVER.stop)


def python_guess() -> str:
    """A default for the preference: a Python next to an `ar3d` on PATH, else empty."""
    import shutil

    exe = shutil.which("ar3d")
    if exe:
        folder = os.path.dirname(exe)
        for name in ("python", "python3", "python.exe"):
            cand = os.path.join(folder, name)
            if os.path.isfile(cand):
                return cand
    return ""


def _signal(proc: subprocess.Popen, force: bool) -> None:
    """Stop the server's whole process group (it may have children); a gone process is fine."""
    try:
        if os.name == "nt":
            proc.kill() if force else proc.terminate()
        else:
            os.killpg(proc.pid, signal.SIGKILL if force else signal.SIGTERM)
    except (OSError, ProcessLookupError):
        pass
