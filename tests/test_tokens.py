import numpy as np
import pytest

from ar3d.core.factory import build_tokenizer
from ar3d.core.tokens import MeshTokenError, MeshVocab, codes_from_text


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def vocab(tokenizer):
    return MeshVocab.from_tokenizer(tokenizer)


def test_ids_resolved_by_string(tokenizer, vocab):
    assert vocab.num_codes == 8192
    assert tokenizer.convert_tokens_to_ids("<mesh0>") == vocab.code_offset
    assert tokenizer.convert_tokens_to_ids("<mesh8191>") == vocab.code_offset + 8191
    assert tokenizer.convert_tokens_to_ids("<mesh-start>") == vocab.start_id
    assert tokenizer.convert_tokens_to_ids("<mesh-end>") == vocab.end_id
    assert vocab.code_offset != 151665  # a small vocabulary: nothing is hard-coded


def test_round_trips(tokenizer, vocab):
    codes = np.random.default_rng(0).integers(0, 8192, 1024)
    ids = vocab.ids_from_codes(codes)
    assert len(ids) == 1026 and ids[0] == vocab.start_id and ids[-1] == vocab.end_id
    back, repair = vocab.codes_from_ids(ids)
    assert np.array_equal(back, codes) and not repair
    text = vocab.text_from_codes(codes)
    assert np.array_equal(codes_from_text(text)[0], codes)
    # the tokenizer maps the text to the same ids, and they survive skip_special_tokens
    assert tokenizer.encode(text, add_special_tokens=False) == ids
    assert tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == text


@pytest.mark.parametrize(
    "codes, message",
    [(np.zeros(1023, int), "exactly 1024"), (np.full(1024, 8192), "outside the codebook"), (np.full(1024, -1), "outside")],
)
def test_bad_codes(vocab, codes, message):
    with pytest.raises(MeshTokenError, match=message):
        vocab.ids_from_codes(codes)


def test_missing_delimiters_and_text_inside(vocab):
    body = vocab.ids_from_codes(np.zeros(1024, int), delimiters=False)
    with pytest.raises(MeshTokenError, match="no <mesh-start>"):
        vocab.codes_from_ids(body)
    with pytest.raises(MeshTokenError, match="cut off"):
        vocab.codes_from_ids([vocab.start_id, *body])
    with pytest.raises(MeshTokenError, match="not a mesh code"):
        vocab.codes_from_ids([vocab.start_id, *body[:10], 5, *body[10:], vocab.end_id])
    with pytest.raises(MeshTokenError, match="unexpected text"):
        codes_from_text("<mesh-start><mesh1> hello <mesh2><mesh-end>")


def test_repair_only_when_asked_and_reported(vocab):
    short = [vocab.start_id, *vocab.ids_from_codes(np.arange(1024), delimiters=False)[:1000]]
    with pytest.raises(MeshTokenError):
        vocab.codes_from_ids(short)
    codes, repair = vocab.codes_from_ids(short, repair=True)
    assert repair.padded == 24 and repair.added_end and (codes[1000:] == 999).all()
    assert "padded 24" in repair.describe()
    long_text = "<mesh-start>" + "<mesh7>" * 1030 + "<mesh-end>"
    codes, repair = codes_from_text(long_text, repair=True)
    assert repair.truncated == 6 and codes.size == 1024


def test_tokenizer_without_mesh_tokens():
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models

    plain = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()))
    with pytest.raises(MeshTokenError, match="not a ShapeLLM-Omni"):
        MeshVocab.from_tokenizer(plain)
