"""``strata synth-check``: probes showing that a SynthVTR dataset measures what it claims (README.md, "Checks").

1. **Switch roles.** For every event of a test video whose role switch is a valid event, probes must tell
   ``(action, agent, patient)`` from ``(action, patient, agent)``. The probes are two multinomial logistic
   regressions ("which entity is the agent", "which is the patient") on a representation of the event's own
   frames, trained on every transitive event of the training videos. With a bag of labels (which entities and
   which action occur) they must stay near chance; with mean-pooled region features they must reach >= 95%;
   frame features are reported.
2. **Shortcuts.** The best retrieval any *single* feature dimension (text regressed onto it) or any *single*
   caption token (its presence, regressed from the video) achieves: a video-identifying shortcut would be high.
3. **Parser.** The project parser's role accuracy against the true role graphs (edges as argument head word,
   role, verb word).
4. **Headroom.** A closed-form baseline (ridge regression from the mean frame feature to the caption's
   bag-of-words, cosine scores) against chance and against the ceiling: an oracle knowing every video's true
   events still ties between videos a partial caption fits (expected recall under random tie-breaking).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import DataError
from training.metrics import dedupe_captions, retrieval_metrics
from training.synth.generator import (ANNOTATIONS, CAPTIONS, FRAME_FEATURES, REGION_FEATURES, SPLITS,
                                      TEST_SPLITS, TRUE_ROLE_GRAPHS, read_config)
from training.synth.world import World

PROBE_C = 1.0
UNSEEN_LOGP = math.log(1e-12)
RIDGE_LAMBDAS = (1.0, 10.0, 100.0, 1000.0, 10000.0)
MAX_PARSED = 2000


@dataclass(frozen=True)
class EventSample:
    """A transitive event of a video, with its features mean-pooled over the event's own frames."""

    event: tuple[str, str, str]
    region: np.ndarray          # [region_dim]: regions pooled over the event's frames
    frame: np.ndarray           # [frame_dim]


@dataclass
class Dataset:
    """What the probes read: split names, captions, true annotations and pooled features."""

    root: Path
    config: dict[str, Any]
    names: dict[str, list[str]]
    captions: dict[str, list[str]]
    annotations: dict[str, Any]
    frame_mean: dict[str, np.ndarray]      # split -> [videos, frame_dim], mean over frames
    region_mean: dict[str, np.ndarray]     # split -> [videos, region_dim], mean over frames and regions
    events: dict[str, list[EventSample]]   # split -> its videos' transitive events

    @cached_property
    def world(self) -> World:
        return World(int(self.config["config"]["seed"]), float(self.config["config"]["heldout_triples"]))


def load(root: str | Path) -> Dataset:
    import h5py

    root = Path(root)
    config = read_config(root)
    if config is None:
        raise DataError(f"{root}: not a SynthVTR dataset (no synth_config.json); run `strata synth --out {root}`")
    names = {}
    for split in SPLITS:
        path = root / f"{split}_names.npy"
        if path.is_file():
            names[split] = [str(n) for n in np.load(path)]
    if "trn" not in names or not any(s in names for s in TEST_SPLITS):
        raise DataError(f"{root}: a training split and a test split are needed, found {sorted(names)}")
    captions = _json(root / CAPTIONS)
    annotations = _json(root / ANNOTATIONS)
    frame_mean, region_mean, events = {}, {}, {}
    with h5py.File(root / FRAME_FEATURES, "r") as fh, h5py.File(root / REGION_FEATURES, "r") as rh:
        for split, vids in names.items():
            f_means, r_means, events[split] = [], [], []
            for v in vids:
                frames, regions = np.asarray(fh[v], np.float64), np.asarray(rh[v], np.float64)
                f_means.append(frames.mean(axis=0))
                r_means.append(regions.mean(axis=(0, 1)))
                for event, (start, end) in zip(annotations[v]["events"], annotations[v]["segments"]):
                    if event[2] is not None:
                        events[split].append(EventSample(tuple(event), regions[start:end].mean(axis=(0, 1)),
                                                         frames[start:end].mean(axis=0)))
            frame_mean[split], region_mean[split] = np.stack(f_means), np.stack(r_means)
    return Dataset(root, config, names, captions, annotations, frame_mean, region_mean, events)


def _json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ---- 1. switch-roles probes -------------------------------------------------------------------------
def _representation(world: World, sample: EventSample, kind: str) -> np.ndarray:
    if kind == "region":
        return sample.region
    if kind == "frame":
        return sample.frame
    action, agent, patient = sample.event  # bag of labels: which entities and which action, not who does what
    n_e = len(world.entity_names)
    bag = np.zeros(n_e + len(world.action_names))
    bag[[world.entity_names.index(agent), world.entity_names.index(patient)]] = 1
    bag[n_e + world.action_names.index(action)] = 1
    return bag


def switch_roles_probes(ds: Dataset) -> dict[str, Any]:
    """Two multinomial logistic probes per representation, "which entity is the agent" and "which is the
    patient", trained on every transitive event of the training videos (features pooled over the event's
    frames); a test event counts as right when its true roles score higher than the switched ones."""
    world = ds.world
    tests = [s for s in TEST_SPLITS if s in ds.events]
    test_events = {s: [e for e in ds.events[s] if world.swappable(e.event)] for s in tests}
    result: dict[str, Any] = {"training_events": len(ds.events["trn"]),
                              "test_events": {s: len(v) for s, v in test_events.items()}}
    tests = [s for s in tests if test_events[s]]
    if not ds.events["trn"] or not tests:
        result["skipped"] = "no transitive training events or no role-switchable test events"
        return result
    for kind in ("bag_of_labels", "region", "frame"):
        probe = RoleProbe(np.stack([_representation(world, e, kind) for e in ds.events["trn"]]),
                          [e.event for e in ds.events["trn"]])
        result[kind] = {split: probe.accuracy(np.stack([_representation(world, e, kind) for e in test_events[split]]),
                                              [e.event for e in test_events[split]])
                        for split in tests}
    return result


class RoleProbe:
    """"Which entity is the agent" and "which is the patient": two multinomial logistic probes on a
    representation of transitive events ``(action, agent, patient)``. ``accuracy`` is the % of events whose true
    roles score higher than the switched ones (ties count half; 50 is chance)."""

    def __init__(self, x: np.ndarray, events: list[tuple[str, str, str]]):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.probes = {}
        for role in (1, 2):  # agent, patient
            probe = make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=3000))
            self.probes[role] = probe.fit(x, [e[role] for e in events])

    def accuracy(self, x: np.ndarray, events: list[tuple[str, str, str]]) -> float:
        logp = {role: probe.predict_log_proba(x) for role, probe in self.probes.items()}
        col = {role: {c: i for i, c in enumerate(probe.classes_)} for role, probe in self.probes.items()}

        def score(i: int, agent: str, patient: str) -> float:  # a role never seen in training: log(1e-12)
            return sum(logp[r][i, col[r][e]] if e in col[r] else UNSEEN_LOGP for r, e in ((1, agent), (2, patient)))

        right = [np.sign(score(i, e[1], e[2]) - score(i, e[2], e[1])) for i, e in enumerate(events)]
        return 100.0 * float(np.mean((np.array(right) + 1) / 2))


# ---- shared text side --------------------------------------------------------------------------------
def _vocab(ds: Dataset) -> dict[str, int]:
    words = sorted({w for name in ds.names["trn"] for c in ds.captions[name] for w in c.split()})
    return {w: i for i, w in enumerate(words)}


def _bow(sentences: list[str], vocab: dict[str, int]) -> np.ndarray:
    out = np.zeros((len(sentences), len(vocab)))
    for i, s in enumerate(sentences):
        for w in s.split():
            if w in vocab:
                out[i, vocab[w]] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def _ridge(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    return np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y)


def _train_pairs(ds: Dataset, video: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """One row per training caption: its video's representation, and the caption."""
    rows, sentences = [], []
    for i, name in enumerate(ds.names["trn"]):
        for c in ds.captions[name]:
            rows.append(i)
            sentences.append(c)
    return video[rows], sentences


def _standardise(ds: Dataset, means: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    mu, sd = means["trn"].mean(axis=0), means["trn"].std(axis=0) + 1e-8
    return {k: (v - mu) / sd for k, v in means.items()}


def _test_set(ds: Dataset, split: str) -> tuple[list[str], list[list[int]]]:
    return dedupe_captions([ds.captions[n] for n in ds.names[split]])


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


# ---- 2. shortcuts ------------------------------------------------------------------------------------
def shortcut_probes(ds: Dataset, split: str) -> dict[str, Any]:
    vocab = _vocab(ds)
    sentences, video_captions = _test_set(ds, split)
    feats = {"frame": _standardise(ds, ds.frame_mean), "region": _standardise(ds, ds.region_mean)}
    both = {s: np.concatenate([feats["frame"][s], feats["region"][s]], axis=1) for s in ds.names}
    dim_names = [f"frame[{d}]" for d in range(ds.frame_mean["trn"].shape[1])]
    dim_names += [f"region[{d}]" for d in range(ds.region_mean["trn"].shape[1])]
    x_video, train_sentences = _train_pairs(ds, both["trn"])
    text_train = _bow(train_sentences, vocab)
    # a single feature dimension: predict it from the caption, rank videos by closeness on it
    w = _ridge(text_train, x_video, 10.0)
    pred = _bow(sentences, vocab) @ w                                     # [captions, dims]
    best_dim = ("", -1.0)
    for d, dim_name in enumerate(dim_names):
        scores = -np.abs(both[split][:, d:d + 1] - pred[None, :, d])      # [videos, captions]
        r1 = retrieval_metrics(scores, video_captions)["t2v_r1"]
        if r1 > best_dim[1]:
            best_dim = (dim_name, r1)
    # a single token: where the caption has it, rank videos by the token's presence predicted from features
    tokens = sorted(vocab, key=vocab.get)
    has_token = np.stack([[w in s.split() for w in tokens] for s in sentences]).astype(float)
    train_has = np.stack([[w in s.split() for w in tokens] for s in train_sentences]).astype(float)
    w_tok = _ridge(x_video, train_has, 100.0)
    pred_tok = both[split] @ w_tok                                         # [videos, tokens]
    best_tok = ("", -1.0)
    for t, token in enumerate(tokens):
        scores = pred_tok[:, t:t + 1] * has_token[None, :, t]
        r1 = retrieval_metrics(scores, video_captions)["t2v_r1"]
        if r1 > best_tok[1]:
            best_tok = (token, r1)
    videos_with = {w: 0 for w in vocab}
    for n in ds.names["trn"]:
        for w in {w for c in ds.captions[n] for w in c.split()}:
            videos_with[w] += 1
    fewest = min((count, w) for w, count in videos_with.items())
    return {
        "chance_t2v_r1": 100.0 / len(ds.names[split]),
        "best_dimension": {"name": best_dim[0], "t2v_r1": best_dim[1]},
        "best_token": {"token": best_tok[0], "t2v_r1": best_tok[1]},
        "rarest_token": {"token": fewest[1], "videos": fewest[0]},
    }


# ---- 3. parser ---------------------------------------------------------------------------------------
def parser_accuracy(ds: Dataset) -> dict[str, Any]:
    try:
        from training.text.parser import LabelledCaption, evaluate_roles
    except ImportError as err:
        return {"available": False, "reason": str(err)}
    graphs = _json(ds.root / TRUE_ROLE_GRAPHS)
    sentences = list(dict.fromkeys(c for s in TEST_SPLITS if s in ds.names for n in ds.names[s]
                                   for c in ds.captions[n]))[:MAX_PARSED]
    items = []
    for s in sentences:
        nodes, edges = graphs[s]
        gold = tuple((nodes[a]["words"][-1], role, nodes[v]["words"][-1]) for v, a, role in edges)
        items.append(LabelledCaption(s, gold))
    acc = evaluate_roles(items)
    by_role: dict[str, list[int]] = {}
    missed = set(acc.missed)
    for item in items:
        for edge in set(item.edges):
            hit = by_role.setdefault(edge[1], [0, 0])
            hit[0] += (item.caption, edge) not in missed
            hit[1] += 1
    return {
        "available": True,
        "captions": acc.captions,
        "accuracy": 100.0 * acc.accuracy,
        "precision": 100.0 * acc.precision,
        "by_role": {r: 100.0 * h / n for r, (h, n) in sorted(by_role.items())},
    }


# ---- 4. baseline and ceiling -------------------------------------------------------------------------
def baseline_retrieval(ds: Dataset) -> dict[str, Any]:
    vocab = _vocab(ds)
    feats = _standardise(ds, ds.frame_mean)
    x_video, train_sentences = _train_pairs(ds, feats["trn"])
    y_text = _bow(train_sentences, vocab)
    tune = "val" if "val" in ds.names else next(s for s in TEST_SPLITS if s in ds.names)

    def metrics(w: np.ndarray, split: str) -> dict[str, float]:
        sentences, video_captions = _test_set(ds, split)
        return retrieval_metrics(_cosine(feats[split] @ w, _bow(sentences, vocab)), video_captions)

    lam = max(RIDGE_LAMBDAS, key=lambda lam: metrics(_ridge(x_video, y_text, lam), tune)["rsum"])
    w = _ridge(x_video, y_text, lam)
    return {"ridge_lambda": lam, **{s: metrics(w, s) for s in TEST_SPLITS if s in ds.names}}


def _fits(caption: dict[str, Any], scene: str, video: dict[str, Any]) -> bool:
    """Whether a caption's content (events in order, scene if named) is true of a video."""
    if caption["scene"] and video["scene"] != scene:
        return False
    events = [tuple(e) for e in video["events"]]
    positions = []
    for e in caption["events"]:
        if tuple(e) not in events:
            return False
        positions.append(events.index(tuple(e)))
    return positions == sorted(positions)


def _expected_recall(scores: np.ndarray, positive: np.ndarray, k: int) -> float:
    """P(a positive is among the first ``k``) when items are sorted by score and ties are broken at random."""
    best = scores[positive].max()
    ahead = int((scores > best).sum())
    tied, tied_pos = int((scores == best).sum()), int((positive & (scores == best)).sum())
    slots = k - ahead
    if slots <= 0:
        return 0.0
    if slots >= tied:
        return 1.0
    return 1.0 - math.comb(tied - tied_pos, slots) / math.comb(tied, slots)


def oracle_ceiling(ds: Dataset, split: str) -> dict[str, float]:
    """Expected R@K of an oracle that knows every video's events and scene: a caption scores
    1 / (number of test videos it is true of) with each video it is true of, 0 with the rest (so a video
    prefers its most specific captions); ties are broken at random."""
    names = ds.names[split]
    sentences, video_captions = _test_set(ds, split)
    content: dict[str, tuple[dict[str, Any], str]] = {}
    for n in names:
        for c, info in zip(ds.captions[n], ds.annotations[n]["captions"]):
            content.setdefault(c, (info, ds.annotations[n]["scene"]))
    fits = np.array([[_fits(*content[s], ds.annotations[n]) for s in sentences] for n in names])
    scores = fits / np.maximum(fits.sum(axis=0, keepdims=True), 1)
    positive = np.zeros_like(fits)
    for v, caps in enumerate(video_captions):
        positive[v, caps] = True
    out = {}
    for direction, sc, pos in (("t2v", scores.T, positive.T), ("v2t", scores, positive)):
        for k in (1, 5, 10):
            out[f"{direction}_r{k}"] = 100.0 * float(np.mean([_expected_recall(sc[q], pos[q], k)
                                                              for q in range(len(sc))]))
    return out


def seen_triples(ds: Dataset) -> dict[str, float]:
    """Per test split, the percentage of its events whose (action, agent, patient) occurs in training."""
    train = {tuple(e) for n in ds.names["trn"] for e in ds.annotations[n]["events"]}
    out = {}
    for split in TEST_SPLITS:
        if split in ds.names:
            events = [tuple(e) for n in ds.names[split] for e in ds.annotations[n]["events"]]
            out[split] = 100.0 * sum(e in train for e in events) / len(events)
    return out


def scene_probes(ds: Dataset) -> dict[str, dict[str, float]]:
    """Which scene a video shows, read by a multinomial logistic probe from its mean region feature and from its
    mean frame feature (trained on ``trn``): region-only models (ViSERN) see the scene only if regions carry it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scenes = {split: [ds.annotations[n]["scene"] for n in names] for split, names in ds.names.items()}
    out: dict[str, dict[str, float]] = {}
    for kind, features in (("region", ds.region_mean), ("frame", ds.frame_mean)):
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=3000))
        probe.fit(features["trn"], scenes["trn"])
        out[kind] = {split: 100.0 * float(np.mean(probe.predict(features[split]) == np.array(scenes[split])))
                     for split in TEST_SPLITS if split in ds.names}
    return out


def run_checks(root: str | Path) -> dict[str, Any]:
    ds = load(root)
    tests = [s for s in TEST_SPLITS if s in ds.names]
    return {
        "dataset": {"root": str(ds.root), "version": ds.config["version"], "splits": ds.config["splits"],
                    "seed": ds.config["config"]["seed"]},
        "events_seen_in_training": seen_triples(ds),
        "switch_roles": switch_roles_probes(ds),
        "scene": scene_probes(ds),
        "shortcuts": {s: shortcut_probes(ds, s) for s in tests},
        "parser": parser_accuracy(ds),
        "baseline": baseline_retrieval(ds),
        "ceiling": {s: oracle_ceiling(ds, s) for s in tests},
    }


def format_report(r: dict[str, Any]) -> str:
    d = r["dataset"]
    lines = [f"SynthVTR check of {d['root']} ({d['version']}, seed {d['seed']}, splits "
             + ", ".join(f"{k} {v}" for k, v in d["splits"].items()) + ")"]
    lines.append("events whose triple occurs in training: "
                 + ", ".join(f"{k} {v:.1f}%" for k, v in r["events_seen_in_training"].items()))
    sr = r["switch_roles"]
    lines.append(f"switch-roles probe accuracy ({sr['training_events']} training events; test events "
                 + ", ".join(f"{k} {v}" for k, v in sr["test_events"].items()) + ")")
    if "skipped" in sr:
        lines.append(f"  skipped: {sr['skipped']}")
    for kind in ("bag_of_labels", "region", "frame"):
        if kind in sr:
            lines.append(f"  {kind:<14}" + "  ".join(f"{k} {v:5.1f}%" for k, v in sr[kind].items()))
    if "scene" in r:
        lines.append("scene probe accuracy: " + "; ".join(
            f"{kind} " + " ".join(f"{k} {v:.1f}%" for k, v in by_split.items()) for kind, by_split in r["scene"].items()))
    for split, s in r["shortcuts"].items():
        lines.append(f"shortcuts ({split}): chance t2v R@1 {s['chance_t2v_r1']:.1f}; best single dimension "
                     f"{s['best_dimension']['name']} R@1 {s['best_dimension']['t2v_r1']:.1f}; best single token "
                     f"{s['best_token']['token']!r} R@1 {s['best_token']['t2v_r1']:.1f}; rarest training token "
                     f"{s['rarest_token']['token']!r} in {s['rarest_token']['videos']} training videos")
    p = r["parser"]
    if p["available"]:
        lines.append(f"parser role accuracy {p['accuracy']:.1f}% precision {p['precision']:.1f}% on "
                     f"{p['captions']} test captions; by role: "
                     + ", ".join(f"{k} {v:.1f}" for k, v in p["by_role"].items()))
    else:
        lines.append(f"parser: not available ({p['reason']})")
    b = r["baseline"]
    for split in (s for s in TEST_SPLITS if s in b):
        m, c = b[split], r["ceiling"][split]
        lines.append(f"retrieval ({split}) ridge baseline (lambda {b['ridge_lambda']:g}): "
                     f"t2v R@1/5/10 {m['t2v_r1']:.1f}/{m['t2v_r5']:.1f}/{m['t2v_r10']:.1f} "
                     f"v2t {m['v2t_r1']:.1f}/{m['v2t_r5']:.1f}/{m['v2t_r10']:.1f} rsum {m['rsum']:.1f}; "
                     f"oracle ceiling t2v {c['t2v_r1']:.1f}/{c['t2v_r5']:.1f}/{c['t2v_r10']:.1f} "
                     f"v2t {c['v2t_r1']:.1f}/{c['v2t_r5']:.1f}/{c['v2t_r10']:.1f}")
    return "\n".join(lines)


def write_json(report: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(report, indent=2))
