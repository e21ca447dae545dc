"""Functions that tests run inside render-pool workers via `pool.call(f"{__file__}:name", ...)`.

Loaded by file path in the worker (tests/ is not a package), so keep this free of test imports.
"""

import os
import signal
import time


def echo(x, delay=0.0):
    if delay:
        time.sleep(delay)
    return x


def pid():
    return os.getpid()


def sleep(seconds):
    time.sleep(seconds)
    return os.getpid()


def segfault():
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(10)


def hard_exit(code=7):
    os._exit(code)


def fail(message="boom"):
    raise ValueError(message)


def crash_first_time(marker):
    """Dies (SIGKILL) the first time, returns the pid the second time: a one-off crash."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


def unpicklable():
    return lambda: None


def big(n):
    import numpy as np

    return np.arange(n, dtype=np.float32)


def heavy_modules(result=None):
    """Which of torch, torchvision, transformers this worker has imported (usable as a `then`)."""
    import sys

    return sorted({m.split(".")[0] for m in sys.modules} & {"torch", "torchvision", "transformers"})


def interpreter():
    import sys

    return sys.executable, "bpy" in sys.modules
