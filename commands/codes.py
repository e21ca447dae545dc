"""`ar3d decode` and `ar3d encode`: 1024 VQ-VAE codes to a mesh, and a mesh to codes.

Which VQ-VAE: ``--vqvae``; the one bundled with ``--model``; (decode) the one the sidecar names,
which made its codes; ``$AR3D_VQVAE``; the one bundled with ``$AR3D_MODEL`` or the default model
(the demo model's when it is the default); the public ``yejunliang23/3DVQVAE``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import CliError, check_writable, output_paths, write_json

CODE_FILES = ".json (an ar3d sidecar or a list of codes), .npy (integer array) or mesh-token text"


def _whole_numbers(values, where: str):
    """The codes as int64, refusing anything that is not a whole number (no silent truncation)."""
    import numpy as np

    flat = values
    while isinstance(flat, list) and len(flat) == 1 and isinstance(flat[0], list):
        flat = flat[0]
    if not isinstance(flat, list) or not flat:
        raise CliError(f"{where}: expected a non-empty list of codes, got {type(flat).__name__}")
    for i, v in enumerate(flat):
        if isinstance(v, bool) or not isinstance(v, int):
            raise CliError(f"{where}: code {i} is {v!r}; codes are whole numbers (VQ-VAE codebook indices)")
    return np.asarray(flat, dtype=np.int64)


def _read_json(path: Path, text: str):
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CliError(f"'{path}' is not valid JSON ({e.msg} at line {e.lineno}); expected {CODE_FILES}") from None
    if isinstance(data, dict):
        if "codes" not in data:
            raise CliError(f"'{path}' has no \"codes\" field; give an ar3d sidecar or a list of codes")
        codes = data["codes"]
        if isinstance(codes, list) and codes and isinstance(codes[0], list):
            codes = codes[-1]  # a sidecar: the last (refined) step
        return _whole_numbers(codes, f"'{path}'"), data.get("vqvae")
    return _whole_numbers(data, f"'{path}'"), None


def _read_npy(path: Path):
    import numpy as np

    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise CliError(f"'{path}' is not a NumPy .npy array ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(arr, np.ndarray) or arr.size == 0:
        raise CliError(f"'{path}' holds no codes")
    if not np.issubdtype(arr.dtype, np.integer):
        raise CliError(f"'{path}' holds {arr.dtype} values; codes are whole numbers (save them as an integer array)")
    return arr.reshape(-1).astype(np.int64)


def read_codes(source: str, repair: bool):
    """(codes, repair report or None, the VQ-VAE path a sidecar names or None)."""
    from ..core.tokens import MeshTokenError, codes_from_text

    if source == "-":
        where, text = "stdin", sys.stdin.read()
    else:
        path = Path(source)
        if not path.is_file():
            raise CliError(f"no such file: '{source}'")
        if path.suffix.lower() == ".npy":
            return _read_npy(path), None, None
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CliError(f"'{path}' is a binary file, not codes; expected {CODE_FILES}") from None
        if path.suffix.lower() == ".json":
            codes, vqvae = _read_json(path, text)
            return codes, None, vqvae
        where = f"'{path}'"
    if not text.strip():
        raise CliError(f"{where} is empty; expected {CODE_FILES}")
    try:
        codes, repair_done = codes_from_text(text, repair=repair)
    except MeshTokenError as e:
        raise CliError(f"{where}: {e}") from None
    return codes, repair_done, None


def _local_model_dir(spec: str | None) -> Path | None:
    """The policy folder whose bundled VQ-VAE to use: local folders only (a policy is never
    downloaded to find its VQ-VAE); an explicit --model that names nothing is an error."""
    from ..core.hub import default_policy, resolve_policy

    chosen = str(spec or default_policy())
    path = Path(chosen).expanduser()
    if path.exists():
        return resolve_policy(path)  # raises with the fix when it is not a model folder
    parts = chosen.split("/")
    if spec is not None and not (len(parts) == 2 and all(parts) and not chosen.startswith((".", "~"))):
        raise CliError(f"no model folder at '{spec}', and it is not a Hugging Face id (owner/name)")
    return None  # a Hugging Face id: no bundled VQ-VAE looked for


def vqvae_path(args, sidecar_vqvae: str | None = None) -> Path:
    """--vqvae, --model's bundled VQ-VAE, the sidecar's, $AR3D_VQVAE, the one bundled with
    $AR3D_MODEL or the default model, the public one (explicit options first, then the file's
    own record, then settings)."""
    from ..core.hub import bundled_vqvae, resolve_vqvae

    if args.vqvae:
        return resolve_vqvae(args.vqvae)
    if args.model:
        found = bundled_vqvae(_local_model_dir(args.model))
        if found:
            return found
    if sidecar_vqvae:
        if Path(sidecar_vqvae).is_file():
            return Path(sidecar_vqvae)
        print(f"ar3d: warning: the sidecar's VQ-VAE '{sidecar_vqvae}' is not here; using the model's", file=sys.stderr)
    return resolve_vqvae(None, _local_model_dir(None))


def cmd_decode(args) -> int:
    out = Path(args.output)
    output_paths(out, 1)  # the format and a writable folder, before anything loads
    codes, repair, sidecar_vqvae = read_codes(args.input, args.repair)
    if repair:
        print(f"ar3d: repaired the mesh tokens: {repair.describe()}", file=sys.stderr)
    import torch

    from ..core.mesh import export_mesh, occupancy_to_mesh
    from ..core.vqvae import load_vqvae

    vq = load_vqvae(vqvae_path(args, sidecar_vqvae), device=args.device or "cpu")
    try:
        occ = vq.decode_occupancy(torch.as_tensor(codes)[None])
    except ValueError as e:  # wrong count or codes outside this VQ-VAE's codebook
        raise CliError(f"'{args.input}': {e}") from e
    mesh = occupancy_to_mesh(occ[0, 0].cpu().numpy())
    try:
        export_mesh(mesh, out)
    except OSError as e:
        raise CliError(f"cannot write '{out}': {e.strerror or e}") from None
    print(f"wrote {out} ({len(mesh.faces)} faces)")
    return 0


def cmd_encode(args) -> int:
    out = Path(args.output) if args.output else None
    if out is not None:
        if out.suffix.lower() not in (".json", ".npy", ".txt"):
            raise CliError(f"cannot write codes to '{out}': use .json, .npy or .txt")
        check_writable(out)
    if not Path(args.mesh).is_file():
        raise CliError(f"no such mesh file: '{args.mesh}'")
    import numpy as np
    import torch

    from ..core.mesh import mesh_to_occupancy
    from ..core.vqvae import load_vqvae

    try:
        occ = mesh_to_occupancy(args.mesh)
    except (ValueError, OSError) as e:
        raise CliError(f"could not read a mesh from '{args.mesh}': {e}") from None
    weights = vqvae_path(args)
    vq = load_vqvae(weights, device=args.device or "cpu")
    codes = vq.encode(torch.as_tensor(occ[None, None])).cpu().numpy()[0]
    try:
        if out is None or out.suffix.lower() == ".txt":
            from ..core.tokens import text_from_codes

            text = text_from_codes(codes)
            if out is None:
                print(text)
            else:
                out.write_text(text + "\n")
        elif out.suffix.lower() == ".npy":
            np.save(out, codes)
        else:
            write_json(out, {"source": str(args.mesh), "vqvae": str(weights), "codes": [codes.tolist()],
                             "occupied_voxels": int(occ.sum())})  # fmt: skip
    except OSError as e:
        raise CliError(f"cannot write '{out}': {e.strerror or e}") from None
    if out is not None:
        print(f"wrote {out} ({int(occ.sum())} occupied voxels → {codes.size} codes)")
    return 0
