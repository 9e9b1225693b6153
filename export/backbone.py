"""``strata export --frame-backbone``: a frame backbone as a new version of ``frame_backbone`` in the repository.

Two sources:

* ``resnet152`` -- :mod:`export.resnet` (torchvision's keys) with the user's weights file (``--weights``, a
  state dict), or random weights from ``--seed`` where none can be had (the manifest says which). Frame features
  are layer4 averaged (2048-d, as HGR's released features); regions are layer4's cells average-pooled to
  ``grid`` x ``grid`` (6 x 6 = 36 by default: the region count the TensorRT profiles take; 7 x 7 is ResNet's map).
* a user ONNX file mapping images [batch, 3, S, S] to features [batch, D] and, optionally, regions [batch, R, Dr]
  as its second output. Its input and outputs are renamed to the backbone's names; it is run once on two images
  here, and ``--frame-dim`` (when given) must equal D.

Both are checked with ONNX Runtime before the version is written (ResNet-152 against PyTorch on one frame), and
refused where a model the repository holds does not read their sizes (:func:`common.frame_backbone.check_backbone`).
"""
from __future__ import annotations

import datetime as _dt
import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from common.errors import ConfigError
from common.frame_backbone import (FRAME_BACKBONE, FRAME_FEAT, IMAGES, REGION_FEAT, SAMPLING, BackboneInfo, ImageSpec,
                                   backbone_layout, check_backbone)
from common.repository import CONFIG_FILE, MANIFEST_FILE, MANIFEST_FORMAT, ONNX_FILE, version_files
from export.triton_config import ADAPTER, ServingOptions, config_pbtxt

BUILTIN = "resnet152"
DEFAULT_GRID = 6
ATOL = 1e-3


def export_frame_backbone(repo: str | Path, source: str, version: int, weights: str | None = None, seed: int = 0,
                          grid: int = DEFAULT_GRID, frame_dim: int | None = None,
                          options: ServingOptions = ServingOptions(), log=print) -> dict:
    """Write ``frame_backbone/<version>`` from ``source`` (``resnet152`` or an ONNX path); returns the manifest."""
    repo = Path(repo).resolve()
    folder = repo / FRAME_BACKBONE
    if (folder / str(version)).exists():
        raise ConfigError(f"{folder}/{version} exists: versions are never overwritten; choose another --version")
    repo.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{FRAME_BACKBONE}-{version}-", dir=repo))
    try:
        path = staging / ONNX_FILE
        spec = ImageSpec()
        if source == BUILTIN:
            described = _resnet152(path, weights, seed, grid, spec)
        else:
            if weights is not None:
                raise ConfigError("--weights goes with --frame-backbone resnet152; a user ONNX carries its weights")
            described, spec = _user_onnx(Path(source), path)
        dims = _check_onnx(path, spec, described, source)
        if frame_dim is not None and dims["frame_dim"] != frame_dim:
            raise ConfigError(f"{source}: gives {dims['frame_dim']}-d frame features, --frame-dim says {frame_dim}")
        layout = backbone_layout(spec.size, dims["frame_dim"], dims["regions"], dims["region_dim"])
        manifest = {
            "format": MANIFEST_FORMAT, "model": FRAME_BACKBONE, "version": version,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "source": described["source"], "image": spec.to_dict(), "sampling": SAMPLING,
            "frame_dim": dims["frame_dim"],
            "regions": {"count": dims["regions"], "dim": dims["region_dim"], "source": described["regions"]},
            "layout": asdict(layout), "parity": described.get("parity"),
            "serving": asdict(options),
        }
        check_backbone(repo, BackboneInfo(version, manifest))   # the models here must read it
        config = config_pbtxt(FRAME_BACKBONE, layout, options)
        if (folder / CONFIG_FILE).is_file() and (folder / CONFIG_FILE).read_text() != config:
            raise ConfigError(f"{folder / CONFIG_FILE} differs from the config this backbone needs (another image size "
                              f"or feature size: one Triton model has one signature); export into another repository")
        if options.backend == "python":
            shutil.copyfile(ADAPTER, staging / "model.py")
        manifest["files"] = {FRAME_BACKBONE: version_files(staging)}
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        folder.mkdir(exist_ok=True)
        staging.rename(folder / str(version))
        if not (folder / CONFIG_FILE).is_file():
            (folder / CONFIG_FILE).write_text(config)
        log(f"exported {FRAME_BACKBONE} version {version} into {repo}: {manifest['source']}; "
            f"{dims['frame_dim']}-d frames, {dims['regions']} regions ({described['regions']})")
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _resnet152(path: Path, weights: str | None, seed: int, grid: int, spec: ImageSpec) -> dict:
    import torch

    from export.resnet import FrameFeatures, resnet152

    if not 1 <= grid <= 7:
        raise ConfigError(f"--grid must be in 1..7 (ResNet's last map is 7 x 7 at 224 px), got {grid}")
    torch.manual_seed(seed)
    resnet = resnet152()
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        try:
            resnet.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ConfigError(f"{weights}: not a torchvision ResNet-152 state dict: {str(err).splitlines()[0]}") from None
        origin = f"ResNet-152 (torchvision layout) with weights {Path(weights).name}"
    else:
        origin = f"ResNet-152 (torchvision layout), RANDOM weights (seed {seed}): no pretrained weights were given"
    module = FrameFeatures(resnet, grid).eval()
    sample = torch.from_numpy(np.random.default_rng(seed).standard_normal((2, 3, spec.size, spec.size)).astype(np.float32))
    with torch.no_grad():
        torch.onnx.export(module, (sample,), str(path), input_names=[IMAGES], output_names=[FRAME_FEAT, REGION_FEAT],
                          dynamic_axes={IMAGES: {0: "batch"}, FRAME_FEAT: {0: "batch"}, REGION_FEAT: {0: "batch"}},
                          opset_version=17, dynamo=False)
        reference = [t.numpy() for t in module(sample[:1])]
    return {"source": origin, "regions": f"grid: layer4's 7 x 7 cells average-pooled to {grid} x {grid}, row-major",
            "reference": (sample[:1].numpy(), reference)}


def _user_onnx(source: Path, path: Path) -> tuple[dict, ImageSpec]:
    """Copy a user's graph with its input and outputs renamed to the backbone's names."""
    import onnx

    if not source.is_file():
        raise ConfigError(f"{source}: no such ONNX file (or give resnet152)")
    try:
        graph_model = onnx.load(str(source))
    except Exception as err:  # noqa: BLE001 - onnx raises several kinds for a bad file
        raise ConfigError(f"{source}: not an ONNX model ({err})") from None
    graph = graph_model.graph
    initialisers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialisers]
    if len(inputs) != 1 or not 1 <= len(graph.output) <= 2:
        raise ConfigError(f"{source}: a frame backbone takes one input (images) and gives one or two outputs "
                          f"(features, and regions); it has {len(inputs)} inputs and {len(graph.output)} outputs")
    renames = {inputs[0].name: IMAGES, graph.output[0].name: FRAME_FEAT}
    if len(graph.output) == 2:
        renames[graph.output[1].name] = REGION_FEAT
    for value in list(graph.input) + list(graph.output):
        value.name = renames.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    size = dims[-1] if len(dims) == 4 and dims[-1] > 0 else ImageSpec().size
    onnx.save(graph_model, str(path))
    spec = ImageSpec(size=size, resize=max(size, round(size * 256 / 224)))
    return {"source": f"user ONNX {source.name}",
            "regions": "user graph's second output" if len(graph.output) == 2 else "none"}, spec


def _check_onnx(path: Path, spec: ImageSpec, described: dict, source: str) -> dict:
    """Run the graph on images; returns its feature sizes (and checks ResNet-152 against PyTorch)."""
    from export.runner import OnnxPart

    try:
        part = OnnxPart(path)
    except Exception as err:  # noqa: BLE001 - ONNX Runtime refuses bad graphs with its own errors
        raise ConfigError(f"{source}: ONNX Runtime cannot load it: {err}") from None
    sample, reference = described.pop("reference", (None, None))
    images = sample if sample is not None else np.random.default_rng(0).standard_normal(
        (2, 3, spec.size, spec.size)).astype(np.float32)
    try:
        out = part.run({IMAGES: images})
    except Exception as err:  # noqa: BLE001
        raise ConfigError(f"{source}: fails on [batch, 3, {spec.size}, {spec.size}] images: {err}") from None
    frames = out[FRAME_FEAT]
    if frames.ndim != 2 or len(frames) != len(images):
        raise ConfigError(f"{source}: its first output must be [batch, frame_dim], got {list(frames.shape)}")
    regions = out.get(REGION_FEAT)
    if regions is not None and (regions.ndim != 3 or len(regions) != len(images)):
        raise ConfigError(f"{source}: its second output must be [batch, regions, dim], got {list(regions.shape)}")
    if reference is not None:
        diffs = [float(np.abs(a - b).max()) for a, b in zip(reference, (frames, regions))]
        scale = [float(np.abs(a).max()) for a in reference]
        if any(d > ATOL * max(1.0, s) for d, s in zip(diffs, scale)):
            raise ConfigError(f"{source}: ONNX Runtime diverges from PyTorch (max |diff| {max(diffs):.3g})")
        described["parity"] = {"frames": 1, "max_abs": {FRAME_FEAT: diffs[0], REGION_FEAT: diffs[1]}, "atol": ATOL,
                               "relative_to": "max(1, max |reference|)"}
    return {"frame_dim": int(frames.shape[1]), "regions": 0 if regions is None else int(regions.shape[1]),
            "region_dim": 0 if regions is None else int(regions.shape[2])}
