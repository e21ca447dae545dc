"""HPS v2.1 throughput for one Hi-GRPO reward batch (8 prompts × 2 steps × 6 views = 96 images),
ar3d's batched scorer next to the public path's one-image-per-forward, and the FLOP floor.

Random weights of the real OpenCLIP ViT-H-14 shape are written to a safetensors file and loaded
through ``HPSv21`` exactly as the real checkpoint would be (the speed does not depend on the
values). Views are 512² RGBA as the renderer gives them; the scorer composites, resizes and
normalises on the device.

    python scripts/bench_rewards.py --out hps.json          # GPU, real ViT-H-14 shape
    python scripts/bench_rewards.py --tiny                  # CPU smoke test

The judges' HTTP client overhead is measured by scripts/bench_judges.py.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ar3d.core import threads  # before torch: OpenMP reads its wait policy when torch loads
import torch  # noqa: E402

# Dense fp16/bf16 tensor-core peaks (TFLOP/s) of the SXM parts; the floor is FLOPs / peak.
PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}
TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 14},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/ beside this file
from bench_generate import _timed as timed  # noqa: E402  (wall seconds with the device drained)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="a tiny random OpenCLIP on the CPU (smoke test)")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2, help="Hi-GRPO steps scored per prompt")
    ap.add_argument("--views", type=int, default=6)
    ap.add_argument("--resolution", type=int, default=512, help="render size fed to the scorer")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=96)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--threads", help="CPU threads for torch (default: $AR3D_THREADS, then auto; ar3d.core.threads)")
    args = ap.parse_args(argv)
    threads.apply(args.threads)

    from ar3d.core.rewards.base import RewardBatch
    from ar3d.core.rewards.hps import HPSConfig, HPSv21, _open_clip

    open_clip = _open_clip()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    tmp = Path(tempfile.mkdtemp())
    model_name = "ViT-H-14"
    if args.tiny:
        (tmp / "tiny.json").write_text(json.dumps(TINY))
        model_name = str(tmp / "tiny.json")
        open_clip.add_model_config(model_name)
        arch = "tiny"
    else:
        arch = "ViT-H-14"
    t0 = time.perf_counter()
    model = open_clip.create_model(arch, pretrained=None)
    params = sum(p.numel() for p in model.parameters())
    from safetensors.torch import save_file

    ckpt = tmp / "hps_random.safetensors"
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(ckpt))
    del model
    build_s = time.perf_counter() - t0

    load_s, hps = timed(lambda: HPSv21(HPSConfig(checkpoint=str(ckpt), model=model_name, device=str(device),
                                                   batch_size=args.batch_size)), device)  # fmt: skip
    n = args.prompts * args.steps
    rng = np.random.default_rng(0)
    views = [rng.integers(0, 256, (args.views, args.resolution, args.resolution, 4), dtype=np.uint8) for _ in range(n)]
    prompts = [f"prompt number {i % args.prompts}" for i in range(n)]
    batch = RewardBatch(prompts, views=views)

    for _ in range(2):  # warm-up (cuDNN/cuBLAS heuristics, allocator)
        hps.score(batch)
    runs = [timed(lambda: hps.score(batch), device)[0] for _ in range(args.repeats)]
    batched = statistics.median(runs)

    # Where the time goes: pixels to the device + compositing/resizing, then the two encoders.
    stacked = np.concatenate(views)
    pre_s = statistics.median(timed(lambda: hps.preprocess(stacked), device)[0] for _ in range(args.repeats))
    x = hps.preprocess(stacked)
    with torch.inference_mode():
        enc_s = statistics.median(timed(lambda: hps.model.encode_image(x), device)[0] for _ in range(args.repeats))
    text_s = statistics.median(timed(lambda: hps.text_features(sorted(set(prompts))), device)[0] for _ in range(args.repeats))

    # The public path: one image (and its prompt) per forward.
    def one_by_one():
        for i in range(n):
            for v in range(args.views):
                x = hps.preprocess(views[i][v : v + 1, ..., :3])
                with torch.inference_mode():
                    img = hps.model.encode_image(x, normalize=True)
                    txt = hps.text_features([prompts[i]])
                (img.float() @ txt.T).item()

    one_by_one()  # warm-up
    naive = timed(one_by_one, device)[0]

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        hps.score(batch)
    flops = fc.get_total_flops()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    floor = flops / (peak * 1e12) if peak else None
    peak_mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    images = n * args.views
    result = {
        "date": _dt.date.today().isoformat(),
        "device": name,
        "torch": torch.__version__,
        "model": arch,
        "params": params,
        "dtype": str(hps.dtype),
        "images": images,
        "resolution": args.resolution,
        "build_random_checkpoint_s": round(build_s, 2),
        "load_s": round(load_s, 2),
        "batched_s": round(batched, 4),
        "batched_images_per_s": round(images / batched, 1),
        "preprocess_s": round(pre_s, 4),
        "image_encoder_s": round(enc_s, 4),
        "text_encoder_s": round(text_s, 4),
        "one_by_one_s": round(naive, 3),
        "speedup": round(naive / batched, 2),
        "gflops": round(flops / 1e9, 1),
        "flop_floor_s": round(floor, 4) if floor else None,
        "fraction_of_floor": round(floor / batched, 3) if floor else None,
        "peak_memory_gib": round(peak_mem, 2) if peak_mem else None,
    }
    print(json.dumps(result, indent=2))
    print(
        f"\nHPS v2.1 ({arch}, {result['dtype']}) on {name}: {images} images ({n} meshes x {args.views} views)\n"
        f"  batched   {batched * 1000:8.1f} ms  ({result['batched_images_per_s']} images/s)\n"
        f"    preprocess {pre_s * 1000:7.1f} ms, image encoder {enc_s * 1000:.1f} ms, text encoder {text_s * 1000:.1f} ms\n"
        f"  one-by-one{naive * 1000:8.1f} ms  -> batched is {result['speedup']}x faster\n"
        + (f"  FLOP floor {floor * 1000:7.1f} ms  ({flops / 1e12:.1f} TFLOP at {peak} TFLOP/s) -> "
           f"{result['fraction_of_floor']:.0%} of peak\n" if floor else "")  # fmt: skip
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
