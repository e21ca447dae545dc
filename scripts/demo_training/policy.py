"""The ``policy`` stage: a BPE tokenizer on the captions and plans, then the small Qwen2.5-VL
policy trained on chat-templated sequences exactly as ``Policy.generate`` prompts it (one-step,
two-step step 1 and step 2), with the loss on the completion only."""

from __future__ import annotations

import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from .data import file_sha, load_split
from .encode import load_codes
from .report import Report, log
from .schedule import cosine_lr

FORMATS = ("one_step", "two_step_1", "two_step_2")


def tokenizer_corpus(meta: list[dict]) -> list[str]:
    from ar3d.core import prompts

    corpus = [prompts.ONE_STEP, prompts.STEP1_PLAN, prompts.STEP2_VISUAL, "You are a helpful assistant."]
    for m in meta:
        corpus += [m["caption"], m["plan1"], m["plan2"]]
    return corpus


def chat_prompts(tok, messages: list[list[dict]], batch: int = 2048) -> list[list[int]]:
    """Prompt ids as Policy.prompt_ids makes them (apply_chat_template, generation prompt on)."""
    out = []
    for i in range(0, len(messages), batch):
        texts = tok.apply_chat_template(messages[i : i + batch], add_generation_prompt=True, tokenize=False)
        out += tok(texts, add_special_tokens=False)["input_ids"]
    return out


def _draw_captions(job) -> list[list[str]]:
    from ar3d.procedural.captions import make_caption  # the generator: only needed for new draws
    from ar3d.procedural.wording import NAMED_ALWAYS

    meta, draws, wording, seed, partial = job
    out = []
    for m in meta:
        caps = [m["caption"].strip()]
        for k in range(1, draws):
            rng = np.random.default_rng([seed, int(m.get("seed", 0)), int(m.get("index", 0)), k])
            attrs = m["attributes"]
            if partial and rng.random() < partial:  # name each attribute with probability 1/2
                keep = NAMED_ALWAYS.get(m["family"], ())
                attrs = {a: v for a, v in attrs.items() if a in keep or rng.random() < 0.5}
            caps.append(make_caption(m["family"], attrs, rng, "train", wording)[0].strip())
        out.append(caps)
    return out


def caption_draws(meta: list[dict], draws: int, wording: str = "v2", seed: int = 0, workers: int = 1,
                  partial: float = 0.0) -> list[list[str]]:  # fmt: skip
    """Each sample's captions: its own, then ``draws - 1`` more of the same attributes in the
    training wording (a pure function of the sample and `seed`, whatever `workers`). Why: a
    sample's one caption is seen ~15 times in a run, so the policy learns those sentences rather
    than the wording; fresh draws multiply the phrasings. Held-out phrases and templates never
    appear: the draws are for the train split only, and test samples are refused.

    ``partial``: the share of extra draws that name each attribute with probability 1/2 only
    ("a bookshelf with four shelves" for a tall, closed four-shelf bookcase). Why: every full
    caption names every attribute, so a prompt naming one of three was outside the data and v3
    drew "a bookshelf with four shelves" as a fence; a partial caption teaches the plan and shape
    to fill in what the prompt leaves open."""
    if draws < 1:
        raise ValueError(f"--caption-draws must be >= 1, got {draws}")
    if not 0.0 <= partial <= 1.0:
        raise ValueError(f"--caption-partial must be in [0, 1], got {partial}")
    if partial and draws == 1:
        raise ValueError("--caption-partial applies to the extra draws: give --caption-draws 2 or more")
    if partial and wording != "v2":
        raise ValueError(f"--caption-partial needs --caption-wording v2 (the wording that can leave attributes out), got {wording!r}")
    if draws == 1:
        return [[m["caption"].strip()] for m in meta]
    for m in meta:
        if m.get("split", "train") != "train" or m.get("novel_combo"):
            raise ValueError(f"caption draws are for the training split; sample {m.get('index')} is "
                             f"{m.get('split')!r} (novel combination: {m.get('novel_combo')})")  # fmt: skip
    chunk = min(2000, -(-len(meta) // (4 * max(1, workers))))
    jobs = [(meta[i : i + chunk], draws, wording, seed, partial) for i in range(0, len(meta), chunk)]
    if workers <= 1 or len(jobs) == 1:
        return [caps for job in jobs for caps in _draw_captions(job)]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        return [caps for part in pool.map(_draw_captions, jobs) for caps in part]


def build_sequences(tok, meta: list[dict], codes: np.ndarray, captions: list[list[str]] | None = None):
    """All three formats for every sample and each of its captions (``captions``: from
    :func:`caption_draws`; default its own) -> (ids int32 [M, L] right-padded, lengths, prompt
    lengths, format index). Rows run format by format, then sample, then caption. Completion:
    plan <mesh-start> codes <mesh-end> <|im_end|>."""
    from ar3d.core.prompts import step_messages
    from ar3d.core.tokens import MeshVocab

    vocab = MeshVocab.from_tokenizer(tok)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    if captions is None:
        captions = caption_draws(meta, 1)
    owner = [i for i, caps in enumerate(captions) for _ in caps]  # sample of each (sample, caption)
    flat = [c for caps in captions for c in caps]
    msgs = {
        0: [step_messages(1, c, two_step=False) for c in flat],
        1: [step_messages(1, c, two_step=True) for c in flat],
        2: [step_messages(2, c, plan=meta[i]["plan1"], two_step=True) for c, i in zip(flat, owner)],
    }
    plans = {1: tok([m["plan1"].strip() for m in meta], add_special_tokens=False)["input_ids"],
             2: tok([m["plan2"].strip() for m in meta], add_special_tokens=False)["input_ids"]}  # fmt: skip
    # The batch path must give exactly what Policy.prompt_ids gives (tokenize=True).
    for f in msgs:
        ref = tok.apply_chat_template(msgs[f][0], add_generation_prompt=True, tokenize=True)
        ref = ref["input_ids"] if hasattr(ref, "keys") else ref
        assert list(ref) == chat_prompts(tok, msgs[f][:1])[0], "chat template batch path differs"
    mesh = codes.astype(np.int64) + vocab.code_offset
    n_codes = mesh.shape[1]
    prompts = {f: chat_prompts(tok, msgs[f]) for f in (0, 1, 2)}
    plens = np.array([len(p) for f in (0, 1, 2) for p in prompts[f]])
    plan_len = {f: np.array([len(plans[1 if f < 2 else 2][i]) for i in owner]) for f in (0, 1, 2)}
    lengths = plens + np.concatenate([plan_len[f] for f in (0, 1, 2)]) + n_codes + 3
    ids = np.full((len(plens), int(lengths.max())), tok.pad_token_id, dtype=np.int32)
    r = 0
    for f in (0, 1, 2):  # numpy slices, not Python lists: millions of rows with many draws
        plan_ids = plans[1] if f < 2 else plans[2]
        for p, i in zip(prompts[f], owner):
            plan = plan_ids[i]
            o = len(p) + len(plan)
            ids[r, : len(p)] = p
            ids[r, len(p) : o] = plan
            ids[r, o] = vocab.start_id
            ids[r, o + 1 : o + 1 + n_codes] = mesh[i]
            ids[r, o + 1 + n_codes] = vocab.end_id
            ids[r, o + 2 + n_codes] = im_end
            r += 1
    fmts = np.repeat(np.arange(3), len(owner))
    return ids, lengths, plens, fmts


def policy_shape(args):
    from ar3d.core.factory import PolicyShape

    return PolicyShape(
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        intermediate_size=args.intermediate,
        max_position_embeddings=4096,
    )


def check_init(args):
    """The ``--policy-init`` folder, or None. Its policy speaks its own VQ-VAE's codes, so a warm
    start is refused unless that VQ-VAE is the one this run trains on (byte for byte)."""
    init = getattr(args, "policy_init", None)
    if init is None:
        return None
    for name in ("model.safetensors", "tokenizer.json", "vqvae.safetensors"):
        if not (init / name).is_file():
            raise SystemExit(f"--policy-init {init}: no {name}; give a folder written by the policy stage (or models/demo)")
    if not (args.out / "vqvae.safetensors").is_file():
        raise SystemExit(f"{args.out} has no vqvae.safetensors: run the vqvae stage or copy the init's VQ-VAE there first")
    if file_sha(init / "vqvae.safetensors") != file_sha(args.out / "vqvae.safetensors"):
        raise SystemExit(
            f"--policy-init {init} was trained on the codes of another VQ-VAE than {args.out / 'vqvae.safetensors'}; "
            f"copy its vqvae.safetensors and vqvae_config.json into {args.out} (VQ_FROM= in train_demo_v2.sh), "
            "or train the policy from scratch"
        )
    return init


def stage_policy(args, device, report: Report) -> None:
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    from ar3d.core.factory import build_tokenizer, policy_config

    init = check_init(args)
    _, meta = load_split(args.data / "train.npz", args.limit)
    codes = load_codes(args, "train")
    t = time.time()
    if init is None:
        tok = build_tokenizer(tokenizer_corpus(meta), bpe_vocab=args.bpe_vocab, num_codes=args.codes)
    else:  # warm start: the init's tokenizer (byte-level BPE reads new wording too) and weights
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(init)
    captions = caption_draws(meta, args.caption_draws, args.caption_wording, args.seed, args.workers,
                             args.caption_partial)  # fmt: skip
    ids, lengths, plens, fmts = build_sequences(tok, meta, codes, captions)
    log(f"policy: tokenizer {len(tok)} tokens; {len(ids)} sequences, length {lengths.min()}..{lengths.max()} "
        f"(mean {lengths.mean():.0f}), prompts {plens.min()}..{plens.max()}; built in {time.time() - t:.0f}s")  # fmt: skip

    torch.manual_seed(args.seed)
    if init is None:
        config = policy_config(tok, policy_shape(args))
        model = Qwen2_5_VLForConditionalGeneration(config).to(device)
    else:
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(init, dtype=torch.float32).to(device)
        config = model.config
        log(f"policy: warm start from {init}")
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    n_lm = sum(p.numel() for n, p in model.named_parameters() if "visual" not in n)
    log(f"policy: {n_params / 1e6:.2f} M params ({n_lm / 1e6:.2f} M language model + head), vocab {config.text_config.vocab_size}")

    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.dim() < 2 or "norm" in n else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), fused=device.type == "cuda")  # fmt: skip
    ids_t = torch.from_numpy(ids).to(device)
    len_t = torch.from_numpy(lengths).to(device)
    plen_t = torch.from_numpy(plens).to(device)
    weights = torch.tensor([args.format_weights[f] for f in fmts], dtype=torch.float, device=device)
    g = torch.Generator(device=device).manual_seed(args.seed)
    amp = device.type == "cuda"
    history, tokens_seen, step = [], 0, 0
    t0 = time.time()
    while True:
        frac = max((time.time() - t0) / args.policy_seconds, step / args.policy_max_steps)
        if frac >= 1:
            break
        lr = cosine_lr(args.lr, frac, step, args.warmup)
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.multinomial(weights, args.batch, replacement=True, generator=g)
        width = int(len_t[idx].max())
        x = ids_t[idx, :width].long()
        pos = torch.arange(1, width, device=device)[None, :]
        mask = (pos >= plen_t[idx, None]) & (pos < len_t[idx, None])  # targets in the completion
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            # Right padding and no attention mask: causal attention never lets a real token see a
            # pad (pads come after it), positions are 0..T-1 as in generation, and SDPA can use
            # its fused causal kernel.
            logits = model(input_ids=x[:, :-1], use_cache=False).logits
        loss = F.cross_entropy(logits[mask].float(), x[:, 1:][mask])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens_seen += int(args.batch * width)
        if step % args.log_every == 0 or step == 1:
            h = dict(step=step, t=round(time.time() - t0, 1), lr=lr, loss=float(loss), grad_norm=float(gn),
                     tokens=tokens_seen, tok_per_s=round(tokens_seen / (time.time() - t0)))  # fmt: skip
            history.append(h)
            log("policy:", json.dumps(h))
    seconds = time.time() - t0

    model.eval()
    model.to(torch.bfloat16)  # ship bf16 weights (half the bytes); Policy.load casts to its dtype
    model.generation_config = GenerationConfig(
        eos_token_id=config.text_config.eos_token_id, pad_token_id=config.text_config.pad_token_id
    )
    vq_path = args.out / "vqvae.safetensors"
    vq_bytes = vq_path.read_bytes()
    model.save_pretrained(args.out, safe_serialization=True)
    tok.save_pretrained(args.out)
    if not vq_path.is_file() or vq_path.read_bytes() != vq_bytes:  # save_pretrained must leave it alone
        vq_path.write_bytes(vq_bytes)
    size = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
    log(f"policy: {step} steps, {tokens_seen / 1e6:.1f} M tokens in {seconds:.0f}s; folder {size / 1e6:.1f} MB")
    fmt_counts = {FORMATS[f]: int((fmts == f).sum()) for f in range(3)}
    report.update("policy", {
        "init": None if init is None else {"from": str(init), "model_sha256_16": file_sha(init / "model.safetensors")},
        "shape": vars(policy_shape(args)) if init is None else "from the init's config.json",
        "params": n_params, "params_language": n_lm,
        "tokenizer": {"bpe_vocab": args.bpe_vocab if init is None else "the init's", "len": len(tok), "mesh_codes": args.codes},
        "vocab_size": config.text_config.vocab_size, "seed": args.seed, "steps": step,
        "seconds": round(seconds, 1), "tokens": tokens_seen, "batch": args.batch, "lr": args.lr,
        "warmup": args.warmup, "schedule": "linear warmup, cosine to 10% over the time budget",
        "optimizer": "AdamW(0.9, 0.95), wd 0.1 (not on norms/biases), clip 1.0, bf16 autocast",
        "format_weights": dict(zip(FORMATS, args.format_weights)), "sequences": fmt_counts,
        "caption_draws": args.caption_draws, "caption_wording": args.caption_wording if args.caption_draws > 1 else None,
        "caption_partial": args.caption_partial,
        "training_samples": len(meta),
        "sequence_length": {"min": int(lengths.min()), "max": int(lengths.max()), "mean": float(lengths.mean())},
        "final_loss": history[-1]["loss"] if history else None, "history": history, "folder_bytes": size,
    })  # fmt: skip
