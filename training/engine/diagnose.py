"""``strata diagnose``: from a checkpoint, the figures that tell a starved branch from a defect.

* **Level spread**: per level (and fused), the mean score of true and of false pairs, their gap, the spread
  of each caption's scores over the videos, and the level's rsum. A level at chance has a gap near 0.
* **Concept heads** (HANet, MCSAN): precision of each side's most probable concepts against the caption's
  words (a video's: the union over its captions; a caption's: its own), P@5 and R-precision; with more heads
  than concepts (explicit sizes), the share of the model's own top 5 that falls on heads with no concept.
* **Gradient norms**: on one training batch (training mode), the norm of the gradient of each loss term
  (unweighted, as the model reports it) on each branch (top-level submodule).
* **Roles** (SynthVTR): the cosine between the index embeddings of a caption and its role-switched twin
  (``switch_roles`` negatives), and linear "who is the agent / the patient" probes (``RoleProbe``) on the
  trained text and video index outputs of single-event transitive videos and captions, trained on ``trn``.
* **Switch roles per level** (SynthVTR): each switch-roles selection set scored by the fused score and by each
  level's alone, so a level that cannot tell a caption from its twin shows as one near 50.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Callable, Sequence

import numpy as np
import torch

from common.errors import read_json_file
from common.layout import LEVEL_SCORES, SCORE, TEXT_INDEX, VIDEO_INDEX
from training.engine.data import PreparedData
from training.engine.evaluate import score_matrices, selection_accuracy
from training.engine.runner import TorchRunner, to_tensors
from training.metrics import retrieval_metrics
from training.synth.generator import ANNOTATIONS

TOP_K = 5  # HANet's SeMe picks the top-5 reliable concepts


def diagnose(model, data: PreparedData, split: str, videos: int = 200, batch_size: int = 64,
             seed: int = 0) -> dict[str, Any]:
    names, captions, video_captions = _subset(data, split, videos)
    result: dict[str, Any] = {"model": model.name, "split": split, "videos": len(names), "captions": len(captions)}
    runner = TorchRunner(model)
    result["levels"] = level_spread(runner, data, names, captions, video_captions, batch_size)
    text = _encode(model, "text", data.text_batch, captions, batch_size)
    video = _encode(model, "video", data.video_batch, names, batch_size)
    if data.needs.concepts is not None:
        result["concepts"] = concept_precision(model, data, text, video, captions, split, names)
    result["gradients"] = gradient_norms(model, data, batch_size, seed)
    if "switch_roles" in data.hard_negative_sets.get(split, {}):
        result["switch_roles_twin_cosine"] = twin_cosine(model, data, split, batch_size)
    roles = {kind: triples for kind, triples in data.hard_negatives(split).items() if kind.startswith("switch_roles")}
    if roles:
        result["switch_roles_by_level"] = level_selection(runner, data, roles, batch_size)
    if (data.root / ANNOTATIONS).is_file():
        result["agent_probe"] = agent_probe(model, data, split, batch_size, videos * 4)
    return result


def _subset(data: PreparedData, split: str, videos: int) -> tuple[list[str], list[str], list[list[int]]]:
    """The first ``videos`` videos of the split and their (de-duplicated) captions."""
    names, captions, video_captions = data.eval_set(split)
    names, video_captions = names[:videos], video_captions[:videos]
    keep = sorted({c for caps in video_captions for c in caps})
    index = {c: i for i, c in enumerate(keep)}
    return names, [captions[c] for c in keep], [[index[c] for c in caps] for caps in video_captions]


@torch.no_grad()
def _encode(model, side: str, batch_of: Callable, items: Sequence[str], batch_size: int) -> dict[str, torch.Tensor]:
    """One tower's outputs for ``items``, concatenated (only outputs with the batch first and equal trailing
    shapes across chunks; padded per-node outputs are dropped)."""
    model.eval()
    encode = model.encode_text if side == "text" else model.encode_video
    names = model.layout.text.input_names if side == "text" else model.layout.video.input_names
    chunks = [encode(to_tensors(batch_of(list(items[i:i + batch_size])), names, "cpu"))
              for i in range(0, len(items), batch_size)]
    return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]
            if all(c[k].shape[1:] == chunks[0][k].shape[1:] for c in chunks)}


def level_spread(runner, data, names, captions, video_captions, batch_size) -> dict[str, dict[str, float]]:
    fused, levels = score_matrices(runner, data, names, captions, batch_size)
    positive = np.zeros(fused.shape, bool)
    for v, caps in enumerate(video_captions):
        positive[caps, v] = True
    out = {}
    for name, scores in [("fused", fused)] + list(zip(runner.levels, levels)):
        pos, neg = float(scores[positive].mean()), float(scores[~positive].mean())
        out[name] = {"positive_mean": pos, "negative_mean": neg, "gap": pos - neg,
                     "spread": float(scores.std(axis=1).mean()),
                     "rsum": retrieval_metrics(scores.T, video_captions)["rsum"]}
    return out


@torch.no_grad()
def concept_precision(model, data, text, video, captions, split, names) -> dict[str, dict[str, float]]:
    vocab, parsed = data.concept_vocab, data.parsed
    split_data = data.splits[split]
    index = {name: i for i, name in enumerate(split_data.names)}
    truth = {"text": [vocab.targets([parsed[c]]) for c in captions],
             "video": [vocab.targets([parsed[c] for c in split_data.captions[index[n]]]) for n in names]}
    out = {}
    for name, (kind, probs) in model.concept_predictions(text, video).items():
        side = name.split()[0]
        size = vocab.size(kind)
        all_heads = probs.numpy()
        probs = all_heads[:, :size]  # heads past the vocabulary (explicit sizes) never have a positive
        true = np.stack([t[kind] for t in truth[side]])
        k = min(TOP_K, size)
        order = np.argsort(-probs, axis=1)
        at_k = np.take_along_axis(true, order[:, :k], axis=1).mean(axis=1)
        counts = true.sum(axis=1).astype(int)
        r_prec = [true[i, order[i, :n]].mean() for i, n in enumerate(counts) if n > 0]
        out[name] = {"heads": int(probs.shape[1]), f"precision@{k}": 100.0 * float(at_k.mean()),
                     "r_precision": 100.0 * float(np.mean(r_prec)) if r_prec else math.nan,
                     "true_concepts_mean": float(counts.mean())}
        if all_heads.shape[1] > size:  # would the model's own top-k pick heads that never saw a positive?
            top = np.argsort(-all_heads, axis=1)[:, :TOP_K]
            out[name]["heads_without_concept"] = int(all_heads.shape[1] - size)
            out[name][f"without_concept@{TOP_K}"] = 100.0 * float((top >= size).mean())
    return out


def gradient_norms(model, data: PreparedData, batch_size: int, seed: int) -> dict[str, dict[str, float]]:
    """``{loss term: {branch: |grad|}}`` on the first training batch of epoch 1's order, through a copy of the
    model: a training-mode step moves BatchNorm's running statistics (HANet), which the figures after it use."""
    from training.engine.train import epoch_order

    model = copy.deepcopy(model)
    pairs = data.pairs("trn")
    batch = data.train_batch([pairs[i] for i in epoch_order(len(pairs), seed, 0)[:batch_size]])
    model.train()
    torch.manual_seed(seed)
    out = model(to_tensors(batch, batch.keys(), "cpu"))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    norms: dict[str, dict[str, float]] = {}
    for term, value in out.items():
        if term == "loss" or not value.requires_grad:
            continue
        grads = torch.autograd.grad(value, [p for _, p in named], retain_graph=True, allow_unused=True)
        squares: dict[str, float] = {}
        for (name, _), grad in zip(named, grads):
            if grad is not None:
                branch = name.split(".")[0]
                squares[branch] = squares.get(branch, 0.0) + float(grad.pow(2).sum())
        norms[term] = {branch: math.sqrt(s) for branch, s in sorted(squares.items()) if s > 0}
    return norms


def twin_cosine(model, data, split, batch_size) -> dict[str, float]:
    """Cosine of the index embeddings of each test caption and its role-switched twin."""
    _, positives, switched = zip(*data.hard_negative_sets[split]["switch_roles"])
    a = _encode(model, "text", data.text_batch, positives, batch_size)[TEXT_INDEX]
    b = _encode(model, "text", data.text_batch, switched, batch_size)[TEXT_INDEX]
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1).numpy()
    return {"pairs": len(cos), "mean": float(cos.mean()), "min": float(cos.min()),
            "share_above_0.99": 100.0 * float((cos > 0.99).mean())}


def level_selection(runner, data, negatives: dict[str, list[tuple[str, str, str]]], batch_size: int
                    ) -> dict[str, dict[str, float]]:
    """``{set: {"fused" | level: accuracy}}``: binary selection by the fused score and by each level's score,
    each chunk encoded once."""
    def score(videos, positives, perturbed):
        video = runner.encode_video(data.video_batch(videos))
        outputs = [runner.score(runner.encode_text(data.text_batch(texts)), video) for texts in (positives, perturbed)]
        return [np.vstack([np.diagonal(o[SCORE])[None], np.diagonal(o[LEVEL_SCORES], axis1=1, axis2=2)])
                for o in outputs]

    names = ("fused", *runner.levels)
    return {kind: dict(zip(names, rows)) for kind, rows in selection_accuracy(negatives, score, batch_size).items()}


def agent_probe(model, data, split, batch_size, max_items) -> dict[str, Any]:
    """Role probes on the towers' index outputs: single transitive event videos, and captions that describe
    exactly one transitive event; trained on ``trn``, scored on ``split``'s items whose roles differ."""
    from training.synth.check import RoleProbe

    notes = read_json_file(data.root / ANNOTATIONS)
    items: dict[str, dict[str, list]] = {}
    for part in ("trn", split):
        videos, captions = [], []
        s = data.splits[part]
        for name, caps in zip(s.names, s.captions):
            note = notes[name]
            if len(note["events"]) == 1 and note["events"][0][2] is not None:
                videos.append((name, tuple(note["events"][0])))
            for caption, described in zip(caps, note["captions"]):
                if len(described["events"]) == 1 and described["events"][0][2] is not None:
                    captions.append((caption, tuple(described["events"][0])))
        items[part] = {"video": videos[:max_items], "text": captions[:max_items]}
    result = {}
    for side, batch_of, key in (("text", data.text_batch, TEXT_INDEX), ("video", data.video_batch, VIDEO_INDEX)):
        train, test = items["trn"][side], [x for x in items[split][side] if x[1][1] != x[1][2]]
        if len({e[1] for _, e in train}) < 2 or not test:
            result[side] = None
            continue
        features = {part: _encode(model, side, batch_of, [x for x, _ in rows], batch_size)[key].numpy()
                    for part, rows in (("trn", train), (split, test))}
        probe = RoleProbe(features["trn"], [e for _, e in train])
        result[side] = {"train_items": len(train), "test_items": len(test),
                        "accuracy": probe.accuracy(features[split], [e for _, e in test])}
    return result


def format_diagnosis(r: dict[str, Any]) -> str:
    lines = [f"{r['model']} on {r['split']}: {r['videos']} videos, {r['captions']} captions",
             "level spread (score of true pairs, false pairs, gap, per-caption spread over videos, rsum):"]
    for name, m in r["levels"].items():
        lines.append(f"  {name:20s} true {m['positive_mean']:7.3f}  false {m['negative_mean']:7.3f}  "
                     f"gap {m['gap']:7.3f}  spread {m['spread']:6.3f}  rsum {m['rsum']:6.1f}")
    if r.get("concepts"):
        lines.append("concept heads against the caption's words (video: all its captions):")
        for name, m in r["concepts"].items():
            at_k = next(k for k in m if k.startswith("precision@"))
            line = (f"  {name:20s} heads {m['heads']:5d}  {at_k} {m[at_k]:5.1f}%  "
                    f"R-precision {m['r_precision']:5.1f}%  true concepts/item {m['true_concepts_mean']:.1f}")
            if "heads_without_concept" in m:
                share = m[f"without_concept@{TOP_K}"]
                line += f"  ({m['heads_without_concept']} more heads with no concept: {share:.1f}% of the top {TOP_K})"
            lines.append(line)
    lines.append("gradient norm of each loss term on each branch (one training batch):")
    for term, branches in r["gradients"].items():
        lines.append(f"  {term}: " + ", ".join(f"{b} {n:.2e}" for b, n in branches.items()))
    if "switch_roles_twin_cosine" in r:
        c = r["switch_roles_twin_cosine"]
        lines.append(f"caption vs role-switched twin, index cosine: mean {c['mean']:.4f}, min {c['min']:.4f}, "
                     f"{c['share_above_0.99']:.1f}% above 0.99 ({c['pairs']} pairs)")
    if "switch_roles_by_level" in r:
        lines.append("switch-roles selection, by the fused score and by each level alone (chance 50):")
        for kind, accuracy in r["switch_roles_by_level"].items():
            lines.append(f"  {kind:22s} " + ", ".join(f"{name} {value:.1f}%" for name, value in accuracy.items()))
    if "agent_probe" in r:
        for side, m in r["agent_probe"].items():
            lines.append(f"agent/patient probe on the {side} index output: " +
                         ("not enough items" if m is None else
                          f"{m['accuracy']:.1f}% ({m['train_items']} train, {m['test_items']} test; chance 50)"))
    return "\n".join(lines)

