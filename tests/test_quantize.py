"""8-bit weights (core/quantize.py): error bounds, the module's semantics, refusals, and on a GPU
the Triton kernel, CUDA-graph capture and greedy agreement with bf16 on the demo model.

The CPU tests run everywhere; the CUDA ones run on a lent GPU machine (they need Triton and,
for fp8, compute capability 8.9+)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ar3d.core.engine import SamplingConfig
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
