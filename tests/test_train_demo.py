"""The demo model's training script runs every stage end to end (tiny data and sizes, CPU)."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_train_demo_smoke(tmp_path):
    out, data = tmp_path / "model", tmp_path / "data"
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "train_demo.py"), "--smoke", "--out", str(out), "--data", str(data)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "vqvae.safetensors", "vqvae_config.json", "tokenizer.json"} <= names
    # the result loads through the same code path as a shipped or downloaded model
    from ar3d.core.policy import Policy
    from ar3d.core.vqvae import load_vqvae

    policy = Policy.load(out, device="cpu")
    vq = load_vqvae(out / "vqvae.safetensors")
    assert policy.vocab.num_codes == vq.config.num_embeddings
    report = json.loads((out / "training_report.json").read_text())  # settings, seeds, metrics per stage
    assert report
