"""8-bit weights (core/quantize.py): error bounds, the module's semantics, refusals, and on a GPU
the Triton kernel, CUDA-graph capture and greedy agreement with bf16 on the demo model.

The CPU tests run everywhere; the CUDA ones run on a lent GPU machine (they need Triton and,
for fp8, compute capability 8.9+)."""

import json

import numpy as np

import pytest
import torch
import torch.nn.functional as F

from ar3d.core.engine import SamplingConfig
from ar3d.core.hub import DEMO_MODEL as DEMO
from ar3d.core.policy import Policy
from ar3d.core.quantize import (
    PrecisionError,
    QuantLinear,
    check_precision,
    dequantize_weight,
    quantize_model,
    quantize_weight,
    resolve_precision,
)

CUDA = torch.cuda.is_available()
FP8 = CUDA and torch.cuda.get_device_capability() >= (8, 9)


def _weights(seed=0, n=96, k=80):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g) * torch.logspace(-3, 1, n)[:, None]  # channels of very different size
    w[3] = 0.0  # an all-zero channel must not divide by zero
    return w


def test_fp8_round_trip_error_bound():
    """e4m3 keeps 3 mantissa bits: |error| ≤ 2⁻⁴·|w| for normal values, plus the subnormal step."""
    w = _weights()
    q, scale = quantize_weight(w, "fp8")
    assert q.dtype == torch.float8_e4m3fn and scale.shape == (w.shape[0],)
    back = dequantize_weight(q, scale)
    err = (back - w).abs()
    assert torch.all(err <= 2**-4 * w.abs() + scale[:, None] * 2**-9 + 1e-12)
    assert torch.equal(back[3], torch.zeros_like(back[3]))
    # the largest value of each channel is represented exactly (it maps to ±448)
    rows = torch.arange(w.shape[0])
    top = w.abs().argmax(dim=1)
    assert torch.allclose(back[rows, top], w[rows, top], rtol=1e-6, atol=0)


def test_int8_round_trip_error_bound():
    w = _weights(1)
    q, scale = quantize_weight(w, "int8")
    assert q.dtype == torch.int8 and int(q.abs().max()) <= 127
    err = (dequantize_weight(q, scale) - w).abs()
    assert torch.all(err <= scale[:, None] / 2 + 1e-7)


@pytest.mark.parametrize("precision", ["fp8", "int8"])
def test_quant_linear_matches_dequantized_product(precision):
    torch.manual_seed(0)
    lin = torch.nn.Linear(80, 96, bias=True)
    ql = QuantLinear.from_linear(lin, precision)
    x = torch.randn(2, 5, 80)
    ref = F.linear(x, dequantize_weight(ql.weight, ql.weight_scale), lin.bias)
    assert torch.allclose(ql(x), ref, atol=1e-5)
    rel = (ql(x) - lin(x)).norm() / lin(x).norm()
    assert rel < (0.05 if precision == "fp8" else 0.02)
    assert ql.weight.shape == lin.weight.shape and "precision=" in repr(ql)


def test_quantize_model_replaces_decoder_linears(tiny_policy_dir):
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_policy_dir, dtype=torch.float32)
    layers = model.config.text_config.num_hidden_layers
    names = quantize_model(model, "int8")
    assert len(names) == 7 * layers + 1 and "lm_head" in names
    assert isinstance(model.get_output_embeddings(), QuantLinear)
    assert not any(isinstance(m, QuantLinear) for n, m in model.named_modules() if "visual" in n)
    assert type(model.get_input_embeddings()) is torch.nn.Embedding  # a gather, left in full precision
    assert model.config.ar3d_precision == "int8"


def test_fused_groups_are_views_of_one_matrix(tiny_policy_dir):
    from transformers import Qwen2_5_VLForConditionalGeneration

    from ar3d.core.quantize import fused

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_policy_dir, dtype=torch.float32)
    attn = model.model.language_model.layers[0].self_attn
    mlp = model.model.language_model.layers[0].mlp
    x = torch.randn(3, model.config.text_config.hidden_size)
    before = [attn.q_proj(x), attn.k_proj(x), attn.v_proj(x), mlp.gate_proj(x), mlp.up_proj(x)]
    quantize_model(model, "int8")
    q, k, v = fused(attn, "ar3d_qkv", x)
    gate, up = fused(mlp, "ar3d_gate_up", x)
    for a, b in zip((q, k, v, gate, up), (attn.q_proj(x), attn.k_proj(x), attn.v_proj(x), mlp.gate_proj(x), mlp.up_proj(x))):
        assert torch.allclose(a, b, atol=1e-5)  # the separate modules read the fused storage
    assert attn.k_proj.weight.data_ptr() == attn.ar3d_qkv.weight.data_ptr() + attn.q_proj.weight.numel()
    for a, b in zip((q, k, v, gate, up), before):  # and stay close to the full-precision layers
        assert (a - b).norm() / b.norm() < 0.02


def test_quantized_policy_graph_engine_equals_transformers(tiny_policy_dir):
    """The graph engine (fused q/k/v and gate/up) and transformers' generate (the separate views)
    give the same greedy tokens on one quantized model (CPU: the dequantized reference path)."""
    from ar3d.core.engine import HFEngine
    from ar3d.core.graph_engine import GraphEngine

    policy = Policy.load(tiny_policy_dir, device="cpu", dtype="float32")
    quantize_model(policy.model, "fp8")
    greedy = SamplingConfig(temperature=0, max_plan_tokens=8)
    prompts = ["a chair", "a tall vase with two handles"]
    policy.engine = GraphEngine(policy.model, policy.pad_id)
    a = policy.generate(prompts, sampling=greedy, seed=0)
    policy.engine = HFEngine(policy.model, policy.pad_id)
    b = policy.generate(prompts, sampling=greedy, seed=0)
    assert a.engine == "graph" and b.engine == "transformers"
    assert [s.steps[0].completion_ids for s in a.samples] == [s.steps[0].completion_ids for s in b.samples]
    assert all(s.codes.shape == (1024,) for s in a.samples)


def test_precision_names_and_env(monkeypatch):
    monkeypatch.delenv("AR3D_PRECISION", raising=False)
    assert resolve_precision(None) == "default"
    assert resolve_precision("bf16") == "default"
    assert resolve_precision("FP8") == "fp8"
    monkeypatch.setenv("AR3D_PRECISION", "int8")
    assert resolve_precision(None) == "int8"
    with pytest.raises(PrecisionError, match="choose fp8, int8 or default"):
        resolve_precision("fp4")


@pytest.mark.parametrize("precision", ["fp8", "int8"])
def test_8bit_refused_on_cpu_naming_the_fallback(tiny_policy_dir, precision):
    with pytest.raises(PrecisionError, match="needs a CUDA GPU.*leave --precision unset"):
        check_precision(precision, "cpu")
    with pytest.raises(PrecisionError, match="needs a CUDA GPU"):
        Policy.load(tiny_policy_dir, device="cpu", precision=precision)


def test_lora_model_refused(tiny_policy_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_policy_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    with pytest.raises(PrecisionError, match="merge the LoRA adapter"):
        quantize_model(model, "int8")


# --- on a GPU --------------------------------------------------------------------------------
gpu = pytest.mark.skipif(not CUDA, reason="the 8-bit kernel needs a CUDA GPU")


@gpu
@pytest.mark.parametrize("precision", ["fp8", "int8"])
@pytest.mark.parametrize("m,n,k", [(1, 3584, 3584), (8, 512, 3584), (3, 1000, 300), (17, 96, 80), (64, 2048, 512),
                                   (8, 3584, 18944), (2, 200, 1001)])  # the last two: split-K (a long K)
def test_kernel_equals_dequantized_product(precision, m, n, k):
    if precision == "fp8" and not FP8:
        pytest.skip("fp8 needs compute capability 8.9+")
    torch.manual_seed(0)
    lin = torch.nn.Linear(k, n, bias=(m == 3)).cuda().to(torch.bfloat16)
    ql = QuantLinear.from_linear(lin, precision)
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    ref = (x.float() @ dequantize_weight(ql.weight, ql.weight_scale).T) + (0 if lin.bias is None else lin.bias.float())
    got = ql(x).float()
    assert got.dtype == torch.float32 and got.shape == (m, n)
    assert torch.allclose(got, ref, rtol=2e-2, atol=2e-2 * ref.abs().mean().item())


def test_w8_config_table_defaults_to_autotune(monkeypatch):
    """Launch configs pinned per (row bucket, N, K): the table is empty by default (every call keeps
    the autotuned kernels), rows round up to a power of two, AR3D_W8_TUNED=0 ignores entries,
    and a config that cannot run is refused before any launch."""
    from ar3d.core import _w8_configs as C

    # the shipped table: the swept H100 winners, all for the fused q/k/v and o matrices
    assert C.tuned_config(8, 4608, 3584) == C.W8Config("dot", 32, 128, num_warps=4, num_stages=5, split_k=4)
    assert all(cfg.kind == "dot" and rows > 1 for (rows, _, _), cfg in C.TUNED.items())
    assert C.tuned_config(1, 4608, 3584) is None and C.tuned_config(8, 37888, 3584) is None
    assert [C.row_bucket(m) for m in (1, 2, 3, 5, 8, 9, 16, 17)] == [1, 2, 4, 8, 8, 16, 16, 0]
    cfg = C.W8Config("dot", 64, 128, num_warps=4, num_stages=4, split_k=2)
    monkeypatch.setitem(C.TUNED, (8, 37888, 3584), cfg)
    assert C.tuned_config(6, 37888, 3584) == cfg and C.tuned_config(9, 37888, 3584) is None
    monkeypatch.setenv("AR3D_W8_TUNED", "0")
    assert C.tuned_config(8, 37888, 3584) is None and C.tuned_config(8, 4608, 3584) is None
    C.W8Config("dot", 8, 128).check_rows(16)
    for bad_rows, kind in ((1, "dot"), (2, "gemv"), (17, "dot")):
        with pytest.raises(ValueError):
            C.W8Config(kind, 16, 128).check_rows(bad_rows)
    for bad in (dict(kind="mma"), dict(kind="swap"), dict(block_n=24), dict(block_k=8), dict(split_k=0), dict(kind="gemv", split_k=2)):
        with pytest.raises(ValueError):
            C.W8Config(**({"kind": "dot", "block_n": 16, "block_k": 128} | bad))



def test_w8_tuned_file_replaces_the_table(tmp_path, monkeypatch):
    """AR3D_W8_TUNED_FILE loads a sweep's --tuned-out table (tuning a GPU needs no code edit);
    a file that is not one is refused naming the variable and the fix."""
    from ar3d.core import _w8_configs as C

    good = tmp_path / "tuned.json"
    cfg = {"kind": "dot", "block_n": 64, "block_k": 64, "num_warps": 4, "num_stages": 3, "split_k": 2}
    good.write_text(json.dumps([{"rows": 8, "n": 4608, "k": 3584, "config": cfg}]))
    monkeypatch.setenv("AR3D_W8_TUNED_FILE", str(good))
    assert C.tuned_config(5, 4608, 3584) == C.W8Config(**cfg) and C.tuned_config(1, 4608, 3584) is None
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"rows": 8, "config": cfg}]))
    monkeypatch.setenv("AR3D_W8_TUNED_FILE", str(bad))
    with pytest.raises(ValueError, match="AR3D_W8_TUNED_FILE=.*sweep_w8"):
        C.tuned_config(8, 4608, 3584)

@gpu
@pytest.mark.parametrize("precision", ["fp8", "int8"])
@pytest.mark.parametrize("cfg", [("gemv", 16, 256, 4, 3, 1), ("dot", 32, 128, 4, 4, 1), ("dot", 16, 256, 4, 4, 3),
                                 ("dot", 32, 128, 4, 5, 4)])  # fmt: skip
def test_fixed_launch_equals_dequantized_product(precision, cfg):
    """Every launch kind `scripts/sweep_w8.py` tries (and `TUNED` may pin) computes the same product,
    with a bias, ragged N and K, and K split into slices."""
    from ar3d.core._w8_configs import W8Config
    from ar3d.core._w8_kernel import w8_linear

    if precision == "fp8" and not FP8:
        pytest.skip("fp8 needs compute capability 8.9+")
    cfg = W8Config(*cfg)
    torch.manual_seed(0)
    for m, n, k in ((1, 200, 1001), (3, 200, 1001), (8, 96, 512), (16, 130, 300)):
        if (m == 1) != (cfg.kind == "gemv"):
            continue
        lin = torch.nn.Linear(k, n, bias=True).cuda().to(torch.bfloat16)
        ql = QuantLinear.from_linear(lin, precision)
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        ref = x.float() @ dequantize_weight(ql.weight, ql.weight_scale).T + lin.bias.float()
        got = w8_linear(x, ql.weight, ql.weight_scale, ql.bias, config=cfg).float()
        assert torch.allclose(got, ref, rtol=2e-2, atol=2e-2 * ref.abs().mean().item()), (m, n, k)


def _demo(precision):
    policy = Policy.load(None, device="cuda", precision=precision)
    assert policy.precision == precision
    return policy


@gpu
def test_fp8_graph_capture_and_greedy_agreement_on_demo_model():
    if not FP8:
        pytest.skip("fp8 needs compute capability 8.9+")
    prompts = ["a stool with three legs", "a snowman with arms", "a table with four legs", "a tall lamp"]
    greedy = SamplingConfig(temperature=0, max_plan_tokens=64)
    ref = _demo("default").generate(prompts, sampling=greedy, seed=0)
    q = _demo("fp8")
    out = q.generate(prompts, sampling=greedy, seed=0)
    assert q.engine.last_timings["cuda_graph"] and q.engine._graph_failed is None
    same = [np.mean(a.codes == b.codes) for a, b in zip(ref.samples, out.samples)]
    print("fp8 vs bf16 greedy code agreement per prompt:", same)
    assert all(s.codes.shape == (1024,) for s in out.samples)
    assert np.mean(same) > 0.5


def test_quantized_bytes_counts_fused_storage_once(tiny_policy_dir):
    from transformers import Qwen2_5_VLForConditionalGeneration

    from ar3d.core.quantize import quantized_bytes

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_policy_dir, dtype=torch.float32)
    text = model.model.language_model
    linears = sum(m.weight.numel() for n, m in text.named_modules() if isinstance(m, torch.nn.Linear))
    channels = sum(m.weight.shape[0] for n, m in text.named_modules() if isinstance(m, torch.nn.Linear))
    head = model.get_output_embeddings().weight.shape
    quantize_model(model, "fp8")
    assert quantized_bytes(model) == linears + head[0] * head[1] + 4 * (channels + head[0])


@pytest.mark.skipif(CUDA, reason="checks the refusal on a machine without a GPU")
def test_cli_precision_on_cpu_is_one_line_before_the_weights_load(capsys, monkeypatch):
    """`ar3d generate --precision fp8` on a CPU: exit 2, one line naming the fallback, and the
    policy's weights are never read (the check sits in Policy.load before from_pretrained)."""
    import transformers

    from ar3d.cli import main

    def boom(*a, **k):
        raise AssertionError("weights loaded before the precision was checked")

    monkeypatch.setattr(transformers.Qwen2_5_VLForConditionalGeneration, "from_pretrained", boom)
    code = main(["generate", "a chair with four legs", "-o", "/tmp/ar3d-precision-test.glb", "--precision", "fp8"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "needs a CUDA GPU" in err and "leave --precision unset" in err


def test_eval_settings_record_precision_and_refuse_mixing(tmp_path, monkeypatch):
    """A rerun of `ar3d eval` with another precision would mix samples: refused like other settings;
    a run made before precision was recorded counts as the default."""
    from ar3d.evaluation.benchmark import load_benchmark
    from ar3d.evaluation.config import EvalConfig, EvalError
    from ar3d.evaluation.run_settings import check_resume
    from ar3d.evaluation.runner import EvalRunner

    monkeypatch.delenv("AR3D_PRECISION", raising=False)
    run = EvalRunner(EvalConfig(out=tmp_path, precision="fp8"))
    settings = run.settings(load_benchmark(None))
    assert settings["precision"] == "fp8"
    old = dict(settings, precision="default")
    (tmp_path / "eval.json").write_text(__import__("json").dumps(old))
    with pytest.raises(EvalError, match="precision: 'default' there, 'fp8' now"):
        check_resume(tmp_path, settings)
    del old["precision"]  # an older run: recorded nothing, ran in the default precision
    (tmp_path / "eval.json").write_text(__import__("json").dumps(old))
    with pytest.raises(EvalError, match="precision"):
        check_resume(tmp_path, settings)
    check_resume(tmp_path, dict(settings, precision="default"))


# --- pre-quantized folders (`ar3d quantize`, core/prequantized.py) -----------------------------
@pytest.fixture(scope="module")
def demo_8bit(tmp_path_factory):
    """The bundled demo model (bf16 weights, a VQ-VAE bundled) written in fp8 and in int8 by the
    command: {precision: (folder, exit code, stderr)}."""
    import contextlib
    import io

    from ar3d.cli import main

    out = {}
    for precision in ("fp8", "int8"):
        folder = tmp_path_factory.mktemp("demo8") / precision
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["quantize", str(DEMO), "--precision", precision, "-o", str(folder)])
        out[precision] = (folder, code, err.getvalue())
    return out


def _source_model(path, dtype=torch.float32):
    from ar3d.core.prequantized import model_class

    return model_class("qwen2_5_vl").from_pretrained(path, dtype=dtype).eval()


def _bits(t):
    """The tensor's bytes as integers: fp8 tensors have no torch.equal on CPU, and -0.0 ≠ 0.0."""
    return t.contiguous().view(torch.uint8) if t.is_floating_point() or t.dtype == torch.int8 else t


@pytest.mark.parametrize("precision", ["fp8", "int8"])
def test_quantize_command_writes_8bit_safetensors_and_copies_the_rest(demo_8bit, precision):
    import hashlib
    import json

    from safetensors import safe_open

    import ar3d
    from ar3d.core.prequantized import METADATA_FILE, WEIGHTS_FILE

    folder, code, err = demo_8bit[precision]
    assert code == 0 and f"quantizing to {precision}" in err  # the tqdm bar over the blocks
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json",
                 "vqvae.safetensors", "vqvae_config.json", "MODEL_CARD.md", "training_report.json"):  # fmt: skip
        assert (folder / name).read_bytes() == (DEMO / name).read_bytes(), name
    assert not (folder / "model.safetensors").exists()  # plain transformers must not load it as a bf16 model
    want = torch.float8_e4m3fn if precision == "fp8" else torch.int8
    with safe_open(str(folder / WEIGHTS_FILE), "pt") as f:
        keys = set(f.keys())
        header = f.metadata()
        q = {k: f.get_tensor(k) for k in keys if k.endswith(".weight") and f"{k}_scale" in keys}
        scales = {k: f.get_tensor(k) for k in keys if k.endswith(".weight_scale")}
        embed = f.get_tensor("model.language_model.embed_tokens.weight")
    layers = 6
    assert len(q) == 4 * layers + 1 and "lm_head.weight" in q  # qkv, o, gate_up, down per layer; the head
    assert {t.dtype for t in q.values()} == {want} and {t.dtype for t in scales.values()} == {torch.float32}
    assert all(scales[k + "_scale"].shape == (t.shape[0],) for k, t in q.items())
    assert not any(".q_proj." in k or ".gate_proj." in k for k in keys if "visual" not in k)  # fused: stored once
    assert embed.dtype == torch.bfloat16  # the rest as stored in the source
    assert header == {"format": "ar3d-8bit-weights", "precision": precision, "scheme": "per-output-channel"}
    meta = json.loads((folder / METADATA_FILE).read_text())
    assert meta["precision"] == precision and meta["scheme"] == "per-output-channel" and meta["ar3d_version"] == ar3d.__version__
    assert len(meta["modules"]) == 7 * layers + 1 and "lm_head" in meta["modules"]
    sha = hashlib.sha256((DEMO / "model.safetensors").read_bytes()).hexdigest()
    assert meta["source"]["files"] == {"model.safetensors": sha} and meta["source"]["path"] == str(DEMO)
    # the 8-bit weights are about half the bf16 ones
    assert (folder / WEIGHTS_FILE).stat().st_size < 0.6 * (DEMO / "model.safetensors").stat().st_size


@pytest.mark.parametrize("precision", ["fp8", "int8"])
def test_prequantized_load_equals_quantize_at_load_bit_for_bit(demo_8bit, precision, monkeypatch):
    """Every tensor (8-bit weights, scales, biases, embedding, norms, rotary tables) of the folder's
    model equals the one quantize-at-load makes, in the same modules and layout; nothing is
    re-quantized and no full-precision model is loaded."""
    import transformers

    from ar3d.core import quantize as qmod
    from ar3d.core.prequantized import load_quantized_model

    ref = _source_model(DEMO)
    quantize_model(ref, precision)

    def boom(*a, **k):
        raise AssertionError("a pre-quantized folder must not be quantized or loaded in full precision again")

    monkeypatch.setattr(qmod, "quantize_weight", boom)
    monkeypatch.setattr(transformers.Qwen2_5_VLForConditionalGeneration, "from_pretrained", boom)
    got = load_quantized_model(demo_8bit[precision][0], device="cpu", dtype=torch.float32)
    a = {**dict(got.named_parameters()), **dict(got.named_buffers())}
    b = {**dict(ref.named_parameters()), **dict(ref.named_buffers())}
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert torch.equal(_bits(a[k]), _bits(b[k])), k
    types = {n: type(m) for n, m in got.named_modules()}
    assert types == {n: type(m) for n, m in ref.named_modules()}
    attn = got.model.language_model.layers[0].self_attn
    assert attn.k_proj.weight.data_ptr() == attn.ar3d_qkv.weight.data_ptr() + attn.q_proj.weight.numel()
    assert got.config.ar3d_precision == precision and got.generation_config.eos_token_id == ref.generation_config.eos_token_id
    x = torch.randn(2, 384)
    assert torch.equal(got.lm_head(x), ref.lm_head(x))


@pytest.mark.parametrize("precision", ["fp8", "int8"])
def test_prequantized_round_trip_within_documented_bound(demo_8bit, precision):
    """Dequantized stored weights vs the source's: fp8 ≤ 2⁻⁴·|w| + scale·2⁻⁹, int8 ≤ scale / 2."""
    from ar3d.core.prequantized import load_quantized_model

    src = _source_model(DEMO)
    got = load_quantized_model(demo_8bit[precision][0])
    checked = 0
    for name, m in got.named_modules():
        if isinstance(m, QuantLinear) and name.rpartition(".")[2] not in ("ar3d_qkv", "ar3d_gate_up"):  # views included
            w = src.get_submodule(name).weight.float()
            back = dequantize_weight(m.weight, m.weight_scale)
            s = m.weight_scale[:, None]
            bound = 2**-4 * w.abs() + s * 2**-9 if precision == "fp8" else s / 2
            assert torch.all((back - w).abs() <= bound + 1e-7), name
            checked += 1
    assert checked == 7 * 6 + 1


def test_quantize_command_errors_are_one_line_and_lose_nothing(demo_8bit, tmp_path, capsys):
    from ar3d.cli import main
    from ar3d.core.prequantized import METADATA_FILE

    folder = demo_8bit["fp8"][0]
    before = (folder / METADATA_FILE).read_text()

    def run(*argv):
        code = main(["quantize", *argv])
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        return code, err

    code, err = run(str(DEMO), "--precision", "int8", "-o", str(folder))
    assert code == 2 and "already exists: pass --force" in err and (folder / METADATA_FILE).read_text() == before
    code, err = run(str(DEMO), "--precision", "fp4", "-o", str(tmp_path / "x"))
    assert code == 2 and "invalid choice: 'fp4'" in err
    code, err = run(str(tmp_path / "missing"), "--precision", "fp8", "-o", str(tmp_path / "x"))
    assert code == 2 and "no model folder at" in err
    code, err = run(str(folder), "--precision", "int8", "-o", str(tmp_path / "x"))
    assert code == 2 and "already quantized (fp8); quantize its source model" in err
    code, err = run(str(DEMO), "--precision", "int8", "-o", str(DEMO / "int8"))
    assert code == 2 and "overlaps the source model" in err and not (DEMO / "int8").exists()
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    code, err = run(str(DEMO), "--precision", "int8", "-o", str(other), "--force")
    assert code == 2 and "not a pre-quantized model folder" in err and (other / "keep.txt").read_text() == "mine"
    assert not list(tmp_path.glob(".tmp-*")) and not list(folder.parent.glob(".tmp-*"))


def test_quantize_refuses_a_lora_adapter_folder(tiny_policy_dir, tmp_path, capsys):
    import shutil

    from ar3d.cli import main

    src = tmp_path / "lora"
    shutil.copytree(tiny_policy_dir, src)
    (src / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 2}')
    assert main(["quantize", str(src), "--precision", "int8", "-o", str(tmp_path / "out"), "-q"]) == 2
    assert "merge the LoRA adapter into the model first" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_quantize_force_replaces_an_earlier_copy(tiny_policy_dir, tmp_path, capsys):
    """--force over a folder written before: the new precision, fp32 source tensors kept fp32."""
    import json

    from ar3d.cli import main
    from ar3d.core.prequantized import METADATA_FILE, load_quantized_model

    out = tmp_path / "tiny8"
    assert main(["quantize", str(tiny_policy_dir), "--precision", "fp8", "-o", str(out), "-q"]) == 0
    assert main(["quantize", str(tiny_policy_dir), "--precision", "int8", "-o", str(out), "-q", "--force"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert json.loads((out / METADATA_FILE).read_text())["precision"] == "int8"
    ref = _source_model(tiny_policy_dir)
    quantize_model(ref, "int8")
    got = load_quantized_model(out)
    for (ka, a), (kb, b) in zip(sorted(got.state_dict().items()), sorted(ref.state_dict().items())):
        assert ka == kb and torch.equal(_bits(a), _bits(b)), ka


def test_prequantized_folder_runs_in_its_precision_and_refuses_others(demo_8bit, monkeypatch):
    """Policy.load of a pre-quantized folder: its stored precision by default; bf16 or the other
    8-bit format refused naming the fix; on a CPU the GPU refusal. The device check is replaced by
    a no-op double for the loading part only (this machine has no CUDA GPU to pass it)."""
    import transformers

    from ar3d.core import policy as policy_mod
    from ar3d.core import prequantized
    from ar3d.core.prequantized import QuantizedFolderError, read_metadata, run_precision

    folder = demo_8bit["fp8"][0]
    meta = read_metadata(folder)
    monkeypatch.delenv("AR3D_PRECISION", raising=False)
    with pytest.raises(QuantizedFolderError, match=r"holds fp8 weights.*run on a CUDA GPU only; on cpu load its source, '.*demo'"):
        Policy.load(folder, device="cpu")
    with pytest.raises(QuantizedFolderError, match=r"cannot run as bf16: leave --precision and AR3D_PRECISION unset.*load its source"):
        Policy.load(folder, device="cpu", precision="bf16")
    with pytest.raises(QuantizedFolderError, match=r"cannot run as int8.*`ar3d quantize .*demo --precision int8 -o OUT`"):
        run_precision("int8", meta, folder, "cpu")
    monkeypatch.setenv("AR3D_PRECISION", "default")
    with pytest.raises(QuantizedFolderError, match="cannot run as default"):
        Policy.load(folder, device="cpu")
    monkeypatch.delenv("AR3D_PRECISION")

    monkeypatch.setattr(prequantized, "check_precision", lambda *a: None)  # double: "a GPU that runs fp8"
    monkeypatch.setattr(policy_mod, "check_precision", lambda *a: None)
    assert run_precision(None, meta, folder, "cuda") == "fp8" and run_precision("e4m3", meta, folder, "cuda") == "fp8"

    def boom(*a, **k):
        raise AssertionError("loaded the full-precision way")

    monkeypatch.setattr(transformers.Qwen2_5_VLForConditionalGeneration, "from_pretrained", boom)
    policy = Policy.load(folder, device="cpu")
    assert policy.precision == "fp8" and isinstance(policy.model.lm_head, QuantLinear)
    assert policy.model.lm_head.weight.dtype == torch.float8_e4m3fn


@pytest.mark.skipif(CUDA, reason="checks the refusal on a machine without a GPU")
def test_cli_generate_prequantized_on_cpu_is_one_line_before_the_weights_load(demo_8bit, capsys, monkeypatch):
    from ar3d.cli import main
    from ar3d.core import prequantized

    def boom(*a, **k):
        raise AssertionError("weights loaded before the device was checked")

    monkeypatch.setattr(prequantized, "load_quantized_model", boom)
    monkeypatch.delenv("AR3D_PRECISION", raising=False)
    code = main(["generate", "a chair", "--model", str(demo_8bit["int8"][0]), "-o", "/tmp/ar3d-prequantized-test.glb"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "holds int8 weights" in err and "load its source" in err


def test_info_shows_the_precision_of_a_prequantized_folder(demo_8bit, capsys):
    import json

    from ar3d.cli import main

    assert main(["info", "--model", str(demo_8bit["fp8"][0])]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("model_precision:"))
    assert "fp8 (pre-quantized by ar3d" in line and "per-output-channel" in line and "43 layers" in line
    assert main(["info", "--json", "--model", str(demo_8bit["int8"][0])]) == 0
    assert json.loads(capsys.readouterr().out)["model_precision"].startswith("int8 (pre-quantized")
    assert main(["info", "--model", str(DEMO)]) == 0
    assert "model_precision: default (weights stored in bfloat16" in capsys.readouterr().out


@gpu
@pytest.mark.parametrize("precision", ["fp8", "int8"])
def test_prequantized_generation_matches_quantize_at_load_token_for_token(demo_8bit, precision):
    if precision == "fp8" and not FP8:
        pytest.skip("fp8 needs compute capability 8.9+")
    prompts = ["a stool with three legs", "a snowman with arms", "a table with four legs"]
    greedy = SamplingConfig(temperature=0, max_plan_tokens=64)
    at_load = Policy.load(DEMO, device="cuda", precision=precision)
    ref = at_load.generate(prompts, sampling=greedy, seed=0)
    del at_load
    pre = Policy.load(demo_8bit[precision][0], device="cuda")
    assert pre.precision == precision
    out = pre.generate(prompts, sampling=greedy, seed=0)
    assert pre.engine.last_timings["cuda_graph"] and pre.engine._graph_failed is None
    assert [s.steps[0].completion_ids for s in out.samples] == [s.steps[0].completion_ids for s in ref.samples]


def test_eval_settings_record_the_precision_of_a_prequantized_folder(demo_8bit, tmp_path, monkeypatch):
    from ar3d.evaluation.benchmark import load_benchmark
    from ar3d.evaluation.config import EvalConfig
    from ar3d.evaluation.runner import EvalRunner

    monkeypatch.delenv("AR3D_PRECISION", raising=False)
    folder = demo_8bit["int8"][0]
    settings = EvalRunner(EvalConfig(out=tmp_path, model=str(folder))).settings(load_benchmark(None))
    assert settings["precision"] == "int8" and settings["vqvae"] == str(folder / "vqvae.safetensors")
