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
    model_dir = Path(str(args.model or default_policy())).expanduser()
    demo = is_demo_model(model_dir)
    if demo:
        print("ar3d: using the bundled demo model (procedural shapes only); pass --model or set "
              "AR3D_MODEL for ShapeLLM-Omni / AR3D-R1", file=sys.stderr)  # fmt: skip
        note = demo_prompt_warning(args.prompt)
        if note:
            warn(note)
    ranker = make_ranker(args, model_dir, demo)  # before the model loads: a bad --rank-rewards fails in seconds
    try:
        return _generate(args, paths, sampling, ranker)
    finally:
        if ranker is not None:
            ranker.close()


def make_ranker(args, model_dir: Path, demo: bool):
    best_of = getattr(args, "best_of", 1)
    spec = getattr(args, "rank_rewards", None)
    if best_of <= 1:
        if spec:
            warn("--rank-rewards does nothing without --best-of N (N > 1)")
        return None
    from ..core.rewards import RewardConfigError
    from ..headless.ranking import Ranker

    try:
        return Ranker.for_model(spec or ("demo_strict" if demo else "geometry"), model_dir, workers=1)
    except RewardConfigError as e:
        raise CliError(str(e)) from None


def _rank(args, ranker, results: list) -> tuple[list, list[dict]]:
    """Keep the best of each sample's ``--best-of`` candidates; per kept sample, what was ranked."""
    from ..headless.ranking import best_of

    kept, notes = best_of(ranker, args.prompt, 2 if args.two_step else 1, results, args.best_of)
    if not args.quiet:
        chosen = ", ".join(f"#{x['chosen']} ({_fmt(x['candidates'][x['chosen']]['score'])})" for x in notes)
        print(f"ar3d: best of {args.best_of} by {ranker.spec}: kept {chosen} in {notes[0]['seconds']:.1f}s", file=sys.stderr)
    return kept, notes


def _fmt(score) -> str:
    return "unscored" if score is None else f"score {score:.2f}"


def _generate(args, paths, sampling, ranker) -> int:
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
        out = pipe.generate(args.prompt, args.samples * getattr(args, "best_of", 1), args.two_step, sampling, args.seed,
                            progress=bar)  # fmt: skip
    finally:
        bar.close()
    results, ranked = (out.results, [None] * len(out.results)) if ranker is None else _rank(args, ranker, out.results)
    failures = 0
    for path, r, rank in zip(paths, results, ranked):
        sidecar = {
            "ar3d_version": __version__,
            "prompt": r.sample.prompt,
            "sample": r.sample.group_index,
            "seed": out.generation.seed,
            "two_step": args.two_step,
            "model": pipe.policy.name,
            "vqvae": pipe.vqvae_path,
            "decode_threshold": pipe.vqvae.config.decode_threshold,  # re-decoding the codes needs it
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
        if rank is not None:
            sidecar["best_of"] = rank
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
