"""A dataset folder made ready for a model: parsed captions, text inputs, concept labels and video features.

``prepare_data`` runs once on the driver (it may generate a SynthVTR folder, parse every caption, compute the
frozen MiniLM features or build the word vocabulary, and the concept vocabularies), writing caches under
``$STRATA_HOME/cache/``; workers then ``load_prepared`` the same caches cheaply. Batches come out as NumPy dicts
keyed by the canonical names of ``common.layout``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from common.errors import DataError
from common.home import strata_home
from common.layout import SWITCHED_INDEX, SWITCHED_PREFIX
from training.data.concepts import KINDS as CONCEPT_KINDS, ConceptConfig, ConceptVocab
from training.data.encode import EncodedGraph, TextLimits, encode_graph, encode_text_batch, encode_video_batch
from training.data.hgr_format import HGRSplit
from training.data.sampling import pad_rows
from training.engine.config import DataConfig
from training.metrics import dedupe_captions
from training.models.factory import resolve_config

from training.synth.generator import CONFIG as SYNTH_CONFIG, HARD_NEGATIVES as HARD_NEGATIVES_FILE, open_dataset

PARSE_CHUNK = 256  # parsed captions appended to the parse cache per write

@dataclass(frozen=True)
class ModelNeeds:
    """What a model's config asks of the data."""

    text_kind: str            # "minilm" or "vocab"
    regions: bool             # the video tower reads region features
    concepts: ConceptConfig | None


def model_needs(model: str, preset: str, overrides: Sequence[str] = ()) -> ModelNeeds:
    config = resolve_config(model, preset, overrides)
    layout = config.layout()
    concepts = getattr(config, "concepts", None)
    return ModelNeeds(text_kind=config.text.kind, regions="region_feats" in layout.video.input_names,
                      concepts=concepts if isinstance(concepts, ConceptConfig) else None)


def cache_dir(dataset: Path) -> Path:
    """Caches of a dataset folder; a SynthVTR folder's caches are also keyed by its generator version and config,
    so a regenerated folder never reads the vocabularies of the data it replaced."""
    identity = str(dataset.resolve())
    marker = dataset / SYNTH_CONFIG
    if marker.is_file():
        identity += "\n" + hashlib.sha256(marker.read_bytes()).hexdigest()
    digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
    folder = strata_home() / "cache" / f"{dataset.name}-{digest}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def check_dataset(config: DataConfig, splits: Sequence[str] = ()) -> Path:
    """Fail fast, before any work: the folder must hold a dataset with ``splits``, unless the config asks for
    SynthVTR (``data.synth``), which is then checked and generated on first use."""
    path = config.resolved_path()
    if config.synth is not None:
        from common.config import from_dict
        from training.synth.config import SynthConfig

        synth = from_dict(SynthConfig, config.synth, where="data.synth")
        if not (path / SYNTH_CONFIG).is_file():
            available = tuple(name for name, n in synth.split_sizes().items() if n > 0)
            _check_splits(path, splits, available)
            return path
    if not path.is_dir():
        raise DataError(f"dataset folder not found: {path}. Give an existing folder (--set data.path=DIR; "
                        f"relative to the current folder), or make a SynthVTR one: strata synth --out {path}")
    if config.synth is None:
        check_synth_version(path)
    dataset = open_dataset(path)
    if not dataset.path(dataset.files.captions).is_file():
        raise DataError(f"{path} holds no dataset: neither {SYNTH_CONFIG} (a folder made by `strata synth`) nor "
                        f"{dataset.files.captions} (HGR's release layout, see the README)")
    _check_splits(path, splits, dataset.splits)
    return path


def _check_splits(path: Path, wanted: Sequence[str], available: Sequence[str]) -> None:
    unknown = [s for s in dict.fromkeys(wanted) if s not in available]
    if unknown:
        raise DataError(f"{path} has no split {', '.join(map(repr, unknown))}; it has {', '.join(available) or 'none'}")


def check_synth_version(path: Path) -> None:
    """A SynthVTR folder written by another generator version is refused (never silently reused)."""
    from training.synth.config import VERSION
    from training.synth.generator import read_config

    existing = read_config(path)
    if existing is not None and existing.get("version") != VERSION:
        raise DataError(f"{path} holds SynthVTR {existing.get('version')}, but this code generates {VERSION}; "
                        f"regenerate it (strata synth --out {path} ...), or train with a config that has data.synth")


def ensure_dataset(config: DataConfig, progress: bool = True) -> Path:
    """The dataset folder. A SynthVTR config generates it on first use, and regenerates a folder of another
    generator version or config; a plain path holding SynthVTR of another version is refused."""
    path = config.resolved_path()
    if config.synth is None and path.is_dir():
        check_synth_version(path)
    if config.synth is not None:
        from common.config import from_dict
        from training.synth.config import SynthConfig
        from training.synth.generator import generate

        generate(from_dict(SynthConfig, config.synth, where="data.synth"), path, progress=progress)
    if not path.is_dir():
        raise DataError(f"dataset folder not found: {path} (give data.synth to generate a SynthVTR set there)")
    return path


def prepare_data(config: DataConfig, model: str, preset: str, overrides: Sequence[str] = (),
                 progress: bool = True) -> "PreparedData":
    """Driver side: make every cache the model needs, then open them."""
    ensure_dataset(config, progress)
    data = PreparedData(config, model_needs(model, preset, overrides), progress=progress)
    data.build_caches()
    return data


def load_prepared(config: DataConfig, model: str, preset: str, overrides: Sequence[str] = ()) -> "PreparedData":
    """Worker side: open the caches ``prepare_data`` made (building any that is missing)."""
    return prepare_data(config, model, preset, overrides, progress=False)


# data.role_switch_attested_by: what of a twin training captions must have, in words
ATTESTED = {"events": "(verb, agent, patient) events", "pairs": "verb-agent and verb-patient pairs"}


class PreparedData:
    def __init__(self, config: DataConfig, needs: ModelNeeds, progress: bool = False):
        self.config = config
        self.needs = needs
        self.progress = progress
        self.root = config.resolved_path()
        self.dataset = open_dataset(self.root)
        self.cache = cache_dir(self.root)
        self.limits = TextLimits(config.max_words, config.max_verbs, config.max_nouns)
        self._selections: dict[str, dict[str, list[tuple[str, str, str]]]] = {}

    # -- caches ------------------------------------------------------------------------------------------------
    def build_caches(self) -> None:
        self.parsed  # noqa: B018 - builds the parse cache
        if self.needs.text_kind == "minilm":
            self.text_features  # noqa: B018
        else:
            self.vocabulary  # noqa: B018
        if self.needs.concepts is not None:
            self.concept_vocab  # noqa: B018

    @cached_property
    def splits(self) -> dict[str, HGRSplit]:
        return {name: self.dataset.split(name, self.config.max_frames, regions=self.needs.regions)
                for name in self.dataset.splits}

    @cached_property
    def dataset_sentences(self) -> list[str]:
        """Every caption of the dataset and every hard negative."""
        sentences = dict.fromkeys(s for split in self.splits.values() for caps in split.captions for s in caps)
        for kinds in self.hard_negative_sets.values():
            for triples in kinds.values():
                for _, _, perturbed in triples:
                    sentences.setdefault(perturbed)
        return list(sentences)

    @property
    def all_sentences(self) -> list[str]:
        """The dataset's sentences and, with ``data.role_switch_negatives``, the training captions' twins."""
        return list(dict.fromkeys(self.dataset_sentences + list(self.switched.values())))

    @cached_property
    def switched(self) -> dict[str, str]:
        """{training caption: its role-switched twin} (``data.role_switch_negatives``; else empty)."""
        if not self.config.role_switch_negatives:
            return {}
        from training.text.switch import role_events, role_pairs, switch_roles

        parsed = self._parse(self.dataset_sentences)
        captions = self._train_sentences()
        twins = {s: switch_roles(parsed[s].tokens, parsed[s].graph) for s in captions}
        twins = {s: t for s, t in twins.items() if t is not None}
        if self.config.role_switch_attested:
            # what the twins may say: events (or verb-role pairs) some training caption has
            seen = role_pairs if self.config.role_switch_attested_by == "pairs" else (lambda events: events)
            described = seen(frozenset().union(*(role_events(parsed[s].tokens, parsed[s].graph) for s in captions)))
            made = self._parse(list(dict.fromkeys(twins.values())), made_here=True)
            twins = {s: t for s, t in twins.items() if seen(role_events(made[t].tokens, made[t].graph)) <= described}
        if self.progress:
            print(f"role-switched twins: {len(twins)} of {len(captions)} training captions"
                  + (f" (only those whose {ATTESTED[self.config.role_switch_attested_by]} training captions have)"
                     if self.config.role_switch_attested else ""), flush=True)
        return twins

    @cached_property
    def parsed(self) -> dict[str, Any]:
        parsed = self._parse(self.dataset_sentences)
        if self.switched:
            self._parse(list(self.switched.values()), made_here=True)
        return parsed

    @cached_property
    def _parse_cache(self) -> tuple[dict[str, Any], Path, Any]:
        """The parse cache, read once: (its parses by sentence, its file, the user's sent2rolegraph table or None)."""
        from training.text.parser import ParsedCaption
        from training.text.rolegraph import load_sent2rolegraph

        source = self.config.rolegraphs
        user = None if source == "parser" else load_sent2rolegraph(Path(source).expanduser())
        tag = "parser" if user is None else hashlib.sha256(str(Path(source).resolve()).encode()).hexdigest()[:10]
        path = self.cache / f"parsed-{tag}.jsonl"
        cached: dict[str, Any] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                item = ParsedCaption.from_json(json.loads(line), where=str(path))
                cached[item.text] = item
        return cached, path, user

    def _parse(self, sentences: Sequence[str], made_here: bool = False) -> dict[str, Any]:
        """Every sentence's parse, cached as JSON lines: our parser's role graphs, or the user's
        sent2rolegraph file (``data.rolegraphs``) re-indexed onto our words; sentences made here (role-switched
        twins, selection sets), which no file holds, are parsed by our parser. Returns the whole table of parses,
        one table that every call shares and extends (``parsed`` is that table)."""
        from training.text.parser import parse_captions

        cached, path, user = self._parse_cache
        missing = [s for s in sentences if s not in cached]
        if missing:
            if self.progress:
                print(f"parsing {len(missing)} captions ...", flush=True)
            mode = "parse" if user is None or made_here else "error"
            lines: list[str] = []
            # Unbuffered appends of whole lines, one write per chunk: runs parsing at once never tear a line.
            with path.open("ab", buffering=0) as handle:
                for item in parse_captions(missing, rolegraphs=user, missing=mode):
                    cached[item.text] = item
                    lines.append(json.dumps(item.to_json()) + "\n")
                    if len(lines) == PARSE_CHUNK:
                        handle.write("".join(lines).encode())
                        lines.clear()
                handle.write("".join(lines).encode())
        return cached

    @cached_property
    def graphs(self) -> dict[str, EncodedGraph]:
        """Role graphs after HGR's truncation (limits of ``data``)."""
        return {sentence: self._encode_graph(sentence) for sentence in self.all_sentences}

    def _encode_graph(self, sentence: str) -> EncodedGraph:
        item = self.parsed[sentence]
        nodes, edges = item.graph.to_hgr()
        return encode_graph(nodes, edges, len(item.tokens), self.limits, where=repr(sentence))

    @cached_property
    def text_features(self):
        from training.text.features import ensure_text_feature_cache
        from training.text.tokenize import TokenizerConfig

        config = TokenizerConfig(max_words=self.config.max_words)
        words = {s: self.parsed[s].tokens for s in self.dataset_sentences}
        caches = [ensure_text_feature_cache(self.cache / "text_features.h5", words, config, progress=self.progress)]
        if self.switched:  # the role-switched twins in a cache of their own (one per set of twins): the dataset's
            # cache stays as it is, and neither set's cache refuses the other's twins as missing
            twins = {s: self.parsed[s].tokens for s in dict.fromkeys(self.switched.values()) if s not in words}
            kept = {"events": "-attested", "pairs": "-attested-pairs"}[self.config.role_switch_attested_by]
            name = "text_features-switched" + (kept if self.config.role_switch_attested else "") + ".h5"
            caches.append(ensure_text_feature_cache(self.cache / name, twins, config, progress=self.progress))
        return {s: cache for cache in caches for s in cache.word_lists()}

    @cached_property
    def vocabulary(self):
        from training.text.vocab import Vocabulary

        path = self.cache / f"vocabulary-min{self.config.min_word_count}.json"
        if path.is_file():
            return Vocabulary.load(path)
        vocab = Vocabulary.build((self.parsed[s].tokens for s in self._train_sentences()), self.config.min_word_count)
        vocab.save(path)
        return vocab

    @cached_property
    def concept_vocab(self) -> ConceptVocab:
        sizes = self.needs.concepts
        path = self.cache / f"concepts-{'-'.join(str(sizes.limit(kind)) for kind in CONCEPT_KINDS)}.json"
        if path.is_file():
            return ConceptVocab.load(path)
        vocab = ConceptVocab.build((self.parsed[s] for s in self._train_sentences()), sizes)
        vocab.save(path)
        return vocab

    def _train_sentences(self) -> list[str]:
        return list(dict.fromkeys(s for caps in self.splits["trn"].captions for s in caps))

    def model_overrides(self) -> list[str]:
        """Config values fixed by the data: feature sizes and the vocabulary size."""
        trn = self.splits["trn"]
        out = [f"video.frame_dim={trn.frame_dim}"]
        if trn.region_shape is not None:
            out.append(f"video.region_dim={trn.region_shape[1]}")
        if self.needs.text_kind == "vocab":
            out.append(f"text.vocab_size={len(self.vocabulary)}")
        concepts = self.needs.concepts
        if concepts is not None:  # "auto" concept heads: as many as the vocabulary has concepts
            out += [f"concepts.num_{kind}={max(1, self.concept_vocab.size(kind))}"
                    for kind in CONCEPT_KINDS if concepts.is_auto(kind)]
        return out

    def concept_sizes(self) -> dict[str, int]:
        """Heads per concept kind: the config's size, or the vocabulary's for ``auto``."""
        concepts = self.needs.concepts
        return {kind: max(1, self.concept_vocab.size(kind)) if concepts.is_auto(kind) else concepts.size(kind)
                for kind in CONCEPT_KINDS}

    @cached_property
    def _video_concepts(self) -> dict[str, dict[str, np.ndarray]]:
        """Each training video's concept targets: the union over its captions (MCSAN's video labels)."""
        trn = self.splits["trn"]
        return {name: self.concept_vocab.targets([self.parsed[s] for s in caps])
                for name, caps in zip(trn.names, trn.captions)}

    # -- items and batches -----------------------------------------------------------------------------------
    @cached_property
    def _video_index(self) -> dict[str, tuple[str, int]]:
        return {name: (split, i) for split, s in self.splits.items() for i, name in enumerate(s.names)}

    def pairs(self, split: str) -> list[tuple[str, str]]:
        """(video name, caption) training pairs of a split."""
        s = self._split(split)
        return [(s.names[v], s.captions[v][c]) for v, c in s.pairs]

    def eval_set(self, split: str) -> tuple[list[str], list[str], list[list[int]]]:
        """Videos, de-duplicated captions and each video's caption indices (HGR's evaluation convention)."""
        s = self._split(split)
        captions, video_captions = dedupe_captions(s.captions)
        return list(s.names), captions, video_captions

    def text_batch(self, sentences: Sequence[str]) -> dict[str, np.ndarray]:
        unknown = [s for s in sentences if s not in self.graphs]
        if unknown:
            raise DataError(f"caption {unknown[0]!r} is not part of dataset {self.root}")
        graphs = [self.graphs[s] for s in sentences]
        if self.needs.text_kind == "minilm":
            cached = [self.text_features[s][s] for s in sentences]
            feats = [pad_rows(c.word_feats, g.total_words) for c, g in zip(cached, graphs)]
            return encode_text_batch(graphs, word_feats=feats, sent_feats=np.stack([c.sent_feat for c in cached]))
        ids = [np.asarray(self.vocabulary.encode(self.parsed[s].tokens), np.int64) for s in sentences]
        return encode_text_batch(graphs, word_ids=ids)

    def video_batch(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        items = []
        for name in names:
            if name not in self._video_index:
                raise DataError(f"{self.root}: unknown video {name!r}")
            split, index = self._video_index[name]
            items.append(self.splits[split].video(index))
        regions = [item.regions for item in items] if self.needs.regions else None
        return encode_video_batch([item.frames for item in items], regions, self.config.max_frames)

    def train_batch(self, pairs: Sequence[tuple[str, str]], with_twins: bool = True) -> dict[str, np.ndarray]:
        """A training batch: text and video inputs, the video ids, and concept labels when the model has heads:
        ``<kind>_labels`` the caption's own concepts, ``<kind>_video_labels`` the union over its video's captions
        (kind: verb, noun, triplet); and the captions' role-switched twins, if any, unless ``with_twins`` is
        false (``data.role_switch_from_epoch``)."""
        videos, sentences = zip(*pairs)
        twins = [(i, self.switched[s]) for i, s in enumerate(sentences) if with_twins and s in self.switched]
        # the captions and their twins padded as one batch, so the model can encode them in one call
        texts = self.text_batch([*sentences, *(t for _, t in twins)])
        batch = {**{k: v[:len(sentences)] for k, v in texts.items()}, **self.video_batch(videos)}
        batch["video_ids"] = np.asarray([self._video_index[v][1] for v in videos], np.int64)
        if self.needs.concepts is not None:
            labels = [self.concept_vocab.targets([self.parsed[s]]) for s in sentences]
            video_labels = [self._video_concepts[v] for v in videos]
            for kind, size in self.concept_sizes().items():  # a small dataset may have fewer concepts than heads
                batch[f"{kind[:-1]}_labels"] = np.stack([pad_rows(l[kind], size) for l in labels])
                batch[f"{kind[:-1]}_video_labels"] = np.stack([pad_rows(l[kind], size) for l in video_labels])
        if twins:  # data.role_switch_negatives: the twins' text inputs, and which pair each belongs to
            batch[SWITCHED_INDEX] = np.asarray([i for i, _ in twins], np.int64)
            batch.update({SWITCHED_PREFIX + k: v[len(sentences):] for k, v in texts.items()})
        return batch

    # -- HGR's binary selection ------------------------------------------------------------------------------
    @cached_property
    def hard_negative_sets(self) -> dict[str, dict[str, list[tuple[str, str, str]]]]:
        """{split: {perturbation: [(video, true caption, perturbed caption), ...]}} from SynthVTR's file."""
        from training.synth.selections import read_hard_negatives

        split_of = {name: split for split in self.dataset.splits
                    for name in self.dataset.split(split, self.config.max_frames).names}
        return read_hard_negatives(self.root / HARD_NEGATIVES_FILE, split_of)

    def has_hard_negatives(self, split: str) -> bool:
        return split in self.hard_negative_sets or self._has_selection_sets(split)

    def hard_negatives(self, split: str) -> dict[str, list[tuple[str, str, str]]]:
        """HGR's binary-selection negatives of the split (SynthVTR's file) and its switch-roles selection sets."""
        return {**self.hard_negative_sets.get(split, {}), **self.selection_sets(split)}

    # -- switch-roles selection sets (SynthVTR) -----------------------------------------------------------------
    def _has_selection_sets(self, split: str) -> bool:
        from training.synth.selections import SELECTION_SPLITS

        return split in SELECTION_SPLITS and split in self.dataset.splits and (self.root / SYNTH_CONFIG).is_file()

    def selection_sets(self, split: str) -> dict[str, list[tuple[str, str, str]]]:
        """{set: [(video, true caption, twin), ...]} of ``training.synth.selections`` for the split, made ready
        to score on first use (replayed, parsed and, for MiniLM, embedded in a cache of their own); only scoring
        asks for them, so training and other commands never pay for them."""
        if split not in self._selections:
            self._selections[split] = self._prepare_selection_sets(split) if self._has_selection_sets(split) else {}
        return self._selections[split]

    def _prepare_selection_sets(self, split: str) -> dict[str, list[tuple[str, str, str]]]:
        from training.synth.selections import VERSION, replayed_sets

        check_synth_version(self.root)
        sets = replayed_sets(self.root, split)
        sentences = list(dict.fromkeys(s for items in sets.values() for _, p, t in items for s in (p, t)))
        self._parse(sentences, made_here=True)   # into self.parsed, the same table
        self.graphs.update({s: self._encode_graph(s) for s in sentences if s not in self.graphs})
        if self.needs.text_kind == "minilm":   # the dataset's own caches stay as they are
            from training.text.features import ensure_text_feature_cache
            from training.text.tokenize import TokenizerConfig

            known = set(self.dataset_sentences)
            words = {s: self.parsed[s].tokens for s in sentences if s not in known}
            cache = ensure_text_feature_cache(self.cache / f"text_features-{VERSION}-{split}.h5", words,
                                              TokenizerConfig(max_words=self.config.max_words), progress=self.progress)
            self.text_features.update({s: cache for s in words})
        return sets

    def _split(self, split: str) -> HGRSplit:
        if split not in self.splits:
            raise DataError(f"{self.root}: unknown split {split!r}; available: {', '.join(self.splits)}")
        return self.splits[split]

