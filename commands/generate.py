"""`ar3d generate`: a prompt to mesh files, each with a JSON sidecar."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .. import __version__
from .common import CliError, ProgressBar, output_paths, sampling_config, silence_progress_bars, write_json


def warn(message: str) -> None:
    print(f"ar3d: warning: {message}", file=sys.stderr)


def demo_prompt_warning(prompt: str) -> str | None:
    """A warning when ``prompt`` names none of the demo model's shape families (it would quietly
    come out as one of them), else None."""
    from ..procedural.captions import family_nouns, families_named

    if families_named(prompt):
        return None
    names = ", ".join(family_nouns())
    return (f"the demo model knows only {len(family_nouns())} shape families and {prompt.strip()!r} names none "
            f"of them, so it will come out as one of them: {names}. For other objects pass --model "
            "(ShapeLLM-Omni / AR3D-R1).")  # fmt: skip


def threads_info() -> dict:
    from ..core.threads import describe

    return describe()


def cmd_generate(args) -> int:
    from ..core.hub import default_policy, is_demo_model

    # Everything that can be checked is checked before the model loads (seconds to minutes).
    if not args.prompt.strip():
        raise CliError("the prompt is empty: describe the object, e.g. ar3d generate \"a wooden chair\"")
    paths = output_paths(Path(args.output), args.samples)
    sampling = sampling_config(args)
    if args.keep_coarse and not args.two_step:
        warn("--keep-coarse does nothing without --two-step (one-step generation makes no coarse mesh)")
    if args.quiet:
        silence_progress_bars()
    demo = is_demo_model(Path(str(args.model or default_policy())).expanduser())
    if demo:
        print("ar3d: using the bundled demo model (procedural shapes only); pass --model or set "
              "AR3D_MODEL for ShapeLLM-Omni / AR3D-R1", file=sys.stderr)  # fmt: skip
        note = demo_prompt_warning(args.prompt)
        if note:
            warn(note)
    from ..core.mesh import MeshConfig, export_mesh, smoothing_passes
    from ..core.pipeline import TextTo3D

    smoothing = getattr(args, "smoothing", "medium")
    mesh_config = MeshConfig(smoothing_iterations=smoothing_passes(smoothing))
    t0 = time.perf_counter()
    pipe = TextTo3D.load(args.model, args.vqvae, device=args.device, dtype=args.dtype, engine=args.engine,
                         precision=args.precision, mesh_config=mesh_config)  # fmt: skip
    load_seconds = time.perf_counter() - t0
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
            "precision": pipe.policy.precision,
            "sampling": vars(sampling),
            "smoothing": smoothing,
            "plans": r.sample.plans,
            "codes": [s.codes.tolist() for s in r.sample.steps],
            "timings": dict(out.timings, load_seconds=load_seconds),
            "threads": threads_info(),
            "diagnostics": out.generation.diagnostics,
            "mesh": None,
        }
        if r.mesh is None:
            failures += 1
            sidecar["error"] = r.error
            print(f"ar3d: sample {r.sample.group_index}: no mesh: {r.error}", file=sys.stderr)
        else:
            _export(export_mesh, r.mesh, path)
            sidecar["mesh"] = {"path": path.name, "vertices": len(r.mesh.vertices), "faces": len(r.mesh.faces),
                               "watertight": bool(r.mesh.is_watertight)}  # fmt: skip
            if args.keep_coarse and r.coarse_mesh is not None:
                coarse = path.with_name(f"{path.stem}_coarse{path.suffix}")
                _export(export_mesh, r.coarse_mesh, coarse)
                sidecar["coarse_mesh"] = coarse.name
            if not args.quiet:
                print(f"wrote {path}")
        write_json(path.with_suffix(".json"), sidecar)
    return 1 if failures else 0


def _export(export_mesh, mesh, path: Path) -> None:
    try:
        export_mesh(mesh, path)
    except OSError as e:
        raise CliError(f"cannot write '{path}': {e.strerror or e}") from None
