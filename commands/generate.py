"""`ar3d generate`, `decode` and `encode`: prompts and codes to meshes, meshes to codes."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .. import __version__
from .common import CliError, ProgressBar, output_paths, sampling_config, write_json


def cmd_generate(args) -> int:
    from ..core.hub import is_demo_model
    from ..core.mesh import export_mesh
    from ..core.pipeline import TextTo3D

    paths = output_paths(Path(args.output), args.samples)
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
    sampling = sampling_config(args)
    t0 = time.perf_counter()
    pipe = TextTo3D.load(args.model, args.vqvae, device=args.device, dtype=args.dtype, engine=args.engine)
    load_seconds = time.perf_counter() - t0
    if is_demo_model(pipe.policy.path):
        print("ar3d: using the bundled demo model (procedural shapes only); pass --model or set "
              "AR3D_MODEL for ShapeLLM-Omni / AR3D-R1", file=sys.stderr)  # fmt: skip
    bar = ProgressBar(not args.quiet)
    try:
        out = pipe.generate(args.prompt, args.samples, args.two_step, sampling, args.seed, progress=bar)
    finally:
        bar.close()
    failures = 0
    for path, r in zip(paths, out.results):
        sidecar = {
            "ar3d_version": __version__,
            "prompt": r.sample.prompt,
            "sample": r.sample.group_index,
            "seed": out.generation.seed,
            "two_step": args.two_step,
            "model": pipe.policy.name,
            "vqvae": pipe.vqvae_path,
            "engine": out.generation.engine,
            "sampling": vars(sampling),
            "plans": r.sample.plans,
            "codes": [s.codes.tolist() for s in r.sample.steps],
            "timings": dict(out.timings, load_seconds=load_seconds),
            "mesh": None,
        }
        if r.mesh is None:
            failures += 1
            sidecar["error"] = r.error
            print(f"ar3d: sample {r.sample.group_index}: no mesh: {r.error}", file=sys.stderr)
        else:
            export_mesh(r.mesh, path)
            sidecar["mesh"] = {"path": path.name, "vertices": len(r.mesh.vertices), "faces": len(r.mesh.faces),
                               "watertight": bool(r.mesh.is_watertight)}  # fmt: skip
            if args.keep_coarse and r.coarse_mesh is not None:
                coarse = path.with_name(f"{path.stem}_coarse{path.suffix}")
                export_mesh(r.coarse_mesh, coarse)
                sidecar["coarse_mesh"] = coarse.name
            if not args.quiet:
                print(f"wrote {path}")
        write_json(path.with_suffix(".json"), sidecar)
    return 1 if failures else 0


def _read_codes(source: str, repair: bool):
    """Codes from a generate sidecar (.json), a .npy array, or mesh-token text (file or '-')."""
    import numpy as np

    from ..core.tokens import codes_from_text

    if source == "-":
        text = sys.stdin.read()
    else:
        path = Path(source)
        if not path.is_file():
            raise CliError(f"no such file: '{source}'")
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False).reshape(-1), None
        text = path.read_text()
        if path.suffix == ".json":
            data = json.loads(text)
            codes = data["codes"][-1] if isinstance(data, dict) else data
            return np.asarray(codes, dtype=np.int64).reshape(-1), None
    codes, repair_done = codes_from_text(text, repair=repair)
    return codes, repair_done


def cmd_decode(args) -> int:
    from ..core.mesh import export_mesh, occupancy_to_mesh
    from ..core.tokens import MeshTokenError
    from ..core.vqvae import load_vqvae
    from ..core.hub import resolve_vqvae

    try:
        codes, repair = _read_codes(args.input, args.repair)
    except MeshTokenError as e:
        raise CliError(f"'{args.input}': {e}") from e
    if repair:
        print(f"ar3d: repaired the mesh tokens: {repair.describe()}", file=sys.stderr)
    vq = load_vqvae(resolve_vqvae(args.vqvae, _model_dir_or_none(args.model)), device=args.device or "cpu")
    import torch

    out = Path(args.output)
    output_paths(out, 1)
    try:
        occ = vq.decode_occupancy(torch.as_tensor(codes)[None])
    except ValueError as e:  # wrong count or codes outside this VQ-VAE's codebook
        raise CliError(f"'{args.input}': {e}") from e
    mesh = occupancy_to_mesh(occ[0, 0].cpu().numpy())
    export_mesh(mesh, out)
    print(f"wrote {out} ({len(mesh.faces)} faces)")
    return 0


def cmd_encode(args) -> int:
    import numpy as np
    import torch

    from ..core.hub import resolve_vqvae
    from ..core.mesh import mesh_to_occupancy
    from ..core.vqvae import load_vqvae

    if not Path(args.mesh).is_file():
        raise CliError(f"no such mesh file: '{args.mesh}'")
    occ = mesh_to_occupancy(args.mesh)
    vq = load_vqvae(resolve_vqvae(args.vqvae, _model_dir_or_none(args.model)), device=args.device or "cpu")
    codes = vq.encode(torch.as_tensor(occ[None, None])).cpu().numpy()[0]
    out = Path(args.output) if args.output else None
    if out is None or out.suffix == ".txt":
        from ..core.tokens import text_from_codes

        text = text_from_codes(codes)
        if out is None:
            print(text)
        else:
            out.write_text(text + "\n")
    elif out.suffix == ".npy":
        np.save(out, codes)
    elif out.suffix == ".json":
        write_json(out, {"source": str(args.mesh), "codes": [codes.tolist()], "occupied_voxels": int(occ.sum())})
    else:
        raise CliError(f"cannot write codes to '{out}': use .json, .npy or .txt")
    if out is not None:
        print(f"wrote {out} ({int(occ.sum())} occupied voxels → {codes.size} codes)")
    return 0


def _model_dir_or_none(spec):
    from ..core.hub import ModelNotFoundError, resolve_policy

    if spec is None:
        return None
    try:
        return resolve_policy(spec)
    except ModelNotFoundError:
        return None
