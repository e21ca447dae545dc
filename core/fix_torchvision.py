"""Check torchvision, or install ar3d's import fix into this environment (`--install`).

Why a module of its own: `ar3d.core` imports `torchvision_compat` to install its hook, so running
that module with `python -m` made runpy warn that it was imported twice.

    python -m ar3d.core.fix_torchvision --install --if-needed
"""

from __future__ import annotations

import sys

from .torchvision_compat import install_pth, torchvision_imports


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m ar3d.core.fix_torchvision", description=__doc__.split("\n\n")[0])
    p.add_argument("--install", action="store_true",
                   help="install the import hook into this environment (a .pth in site-packages)")  # fmt: skip
    p.add_argument("--if-needed", action="store_true", help="with --install: only if `import torchvision` fails")
    args = p.parse_args(argv)
    if not args.install:
        print("torchvision imports" if torchvision_imports() else "torchvision does not import")
        return 0
    if args.if_needed and torchvision_imports():
        return 0
    for path in install_pth():
        print(f"wrote {path}")
    return 0 if torchvision_imports() else 1


if __name__ == "__main__":
    sys.exit(main())
