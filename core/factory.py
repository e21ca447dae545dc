"""New Qwen2.5-VL policies with mesh tokens, saved exactly like a downloaded checkpoint.

Tests build tiny ones, benchmarks build random ones of the real 7B shape, and the demo model
starts from one. Everything goes through `save_pretrained` and is loaded back by the same code
path as ShapeLLM-Omni / AR3D-R1, so what is tested is what users run.

The tokenizer is a byte-level BPE (the Qwen2 scheme) trained on whatever text the caller gives,
plus Qwen's chat special tokens and the mesh tokens; the chat template is ChatML, as Qwen's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .tokens import NUM_CODES, add_mesh_tokens

# ChatML as used by Qwen2.5 (text-only subset; string or list-of-parts content).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>",
]  # fmt: skip

_DEFAULT_CORPUS = [
    "Please generate a 3D mesh based on the prompt I provided: a wooden chair with four legs.",
    "First write a concise high-level semantic plan of the object: focus on global shape primitives.",
    "Now write ONLY a detailed visual description that expands parts into precise geometric details.",
    "a table, a lamp, a mug with a handle, a tall vase, a round stool, a house with a roof.",
]


@dataclass
class PolicyShape:
    """Sizes of a Qwen2.5-VL policy. Defaults: a tiny model for tests (a few hundred KB)."""

    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 128
    vocab_size: int | None = None  # None: the tokenizer's size rounded up to a multiple of 64
    vision: dict = field(
        default_factory=lambda: dict(
            depth=1, hidden_size=32, intermediate_size=64, num_heads=2, fullatt_block_indexes=[0]
        )
    )
    max_position_embeddings: int = 32768

    @classmethod
    def qwen25_vl_7b(cls) -> "PolicyShape":
        """The real ShapeLLM-Omni / AR3D-R1 shape (Qwen2.5-VL-7B with 8194 added mesh tokens)."""
        return cls(
            hidden_size=3584,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            intermediate_size=18944,
            vocab_size=159_872,  # 151,665 Qwen ids + 8,194 mesh tokens, rounded up to 64
            vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16,
                        fullatt_block_indexes=[7, 15, 23, 31]),  # fmt: skip
            max_position_embeddings=128000,
        )


def build_tokenizer(corpus: list[str] | None = None, bpe_vocab: int = 512, num_codes: int = NUM_CODES):
    """A Qwen2-style fast tokenizer with chat and mesh tokens, trained in about a second."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_vocab,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus or _DEFAULT_CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=SPECIAL_TOKENS[1:],
        model_max_length=32768,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    add_mesh_tokens(fast, num_codes)
    return fast


def policy_config(tokenizer, shape: PolicyShape):
    from transformers import Qwen2_5_VLConfig

    vocab_size = shape.vocab_size or -(-len(tokenizer) // 64) * 64
    if vocab_size < len(tokenizer):
        raise ValueError(f"vocab_size {vocab_size} is smaller than the tokenizer ({len(tokenizer)} tokens)")
    head_dim = shape.hidden_size // shape.num_attention_heads
    half = head_dim // 2  # multimodal RoPE splits half the head dim into (time, height, width)
    section = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]
    ids = tokenizer.convert_tokens_to_ids
    text = dict(
        vocab_size=vocab_size,
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        intermediate_size=shape.intermediate_size,
        max_position_embeddings=shape.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": section},
        bos_token_id=ids("<|endoftext|>"),
        eos_token_id=ids("<|im_end|>"),
        pad_token_id=ids("<|endoftext|>"),
    )
    vision = dict(shape.vision, out_hidden_size=shape.hidden_size)
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )


def create_random_policy(path: str | Path, shape: PolicyShape | None = None, tokenizer=None, seed: int = 0,
                         dtype=None, device: str = "cpu"):  # fmt: skip
    """Save a randomly initialised policy + tokenizer at `path`, as a checkpoint folder."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    shape = shape or PolicyShape()
    tokenizer = tokenizer or build_tokenizer()
    config = policy_config(tokenizer, shape)
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(config)
    if dtype is not None:
        model = model.to(dtype)
    model.generation_config = GenerationConfig(
        eos_token_id=config.text_config.eos_token_id, pad_token_id=config.text_config.pad_token_id
    )
    path = Path(path)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return model, tokenizer
