"""``strata export``: a checkpoint (or a freshly initialised model) -> a new version in the Triton model repository."""
from __future__ import annotations

import argparse
from pathlib import Path

from common.conventions import add_command, add_set_flag, non_negative_int, positive_int, repo_help, repo_path
from export.triton_config import BACKENDS, ServingOptions


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "export",
        help="export a model's towers and scorer to ONNX as a new version of the Triton model repository",
        description="Writes <repo>/<name>_<preset>_{text,video,scorer}/<N>/ (model.onnx, manifest.json) and each "
                    "model's config.pbtxt, after checking PyTorch vs ONNX Runtime parity. The repository is the "
                    "setting model_repository ($STRATA_HOME/model_repository unless changed) or --repo.",
        examples=["strata export $STRATA_HOME/runs/hgr_synthvtr-seed0/best",
                  "strata export --model hgr --preset fast --random-init --repo ./scratch_repository"],
    )
    p.add_argument("checkpoint", nargs="?", help="checkpoint folder (omit with --random-init)")
    p.add_argument("--repo", help=repo_help("Triton model repository (relative: to the current folder)"))
    p.add_argument("--version", type=positive_int, help="version number (default: one more than the latest there)")
    p.add_argument("--model", help="model name (required with --random-init; checked against a checkpoint)")
    p.add_argument("--preset", help="preset name (with --random-init; for a checkpoint, default: its training preset)")
    p.add_argument("--random-init", action="store_true", help="export a freshly initialised model (no checkpoint)")
    p.add_argument("--seed", type=int, default=0, help="seed of --random-init weights and random parity batches")
    add_set_flag(p, "a model config value (with --random-init)", "video.hidden=256")
    p.add_argument("--data", help="dataset folder for parity batches (default: the checkpoint's training data; "
                                  "random batches when there is none)")
    p.add_argument("--split", default="tst", help="split whose queries the ranking parity covers")
    p.add_argument("--random-batches", action="store_true", help="parity on random batches even where data is known")
    p.add_argument("--text-backbone", action="store_true",
                   help="export only the MiniLM text backbone (model text_backbone), as --version (default 1)")
    p.add_argument("--no-text-backbone", action="store_true",
                   help="do not export the text backbone here (by default it is exported once, before the first MiniLM "
                        "model, and a MiniLM model records the backbone version it reads)")
    p.add_argument("--frame-backbone", metavar="SOURCE",
                   help="export only a frame backbone for raw video (model frame_backbone), as --version (default: one "
                        "more than the latest): resnet152 (with --weights, else random weights) or a user ONNX file "
                        "mapping images [batch, 3, S, S] to features [batch, D] (and regions [batch, R, Dr])")
    p.add_argument("--weights", help="with --frame-backbone resnet152: a torchvision ResNet-152 state dict file")
    p.add_argument("--grid", type=positive_int, default=6,
                   help="with --frame-backbone resnet152: grid regions per side (6: 36 regions; 7: ResNet's map)")
    p.add_argument("--frame-dim", type=positive_int, help="with --frame-backbone: the feature size it must give")
    p.add_argument("--backend", choices=BACKENDS, default="python", help="how Triton runs the graphs")
    p.add_argument("--device", choices=("cpu", "gpu"), default=None, help="instance kind (default: gpu for tensorrt, else cpu)")
    p.add_argument("--max-batch-size", type=positive_int, default=64, help="Triton's max_batch_size per model")
    p.add_argument("--queue-delay-us", type=non_negative_int, default=ServingOptions.queue_delay_us,
                   help="dynamic batching: how long a request may wait for others (0: batch only what is queued "
                        "while an instance is busy)")
    p.add_argument("--instances", type=positive_int, default=1, help="instances per model")
    p.add_argument("--threads", type=non_negative_int, default=0,
                   help="ONNX Runtime intra-op threads per instance (0: its default)")
    p.add_argument("--trt-accelerator", action="store_true", help="onnxruntime on GPU: TensorRT execution accelerator")
    p.add_argument("--trt-precision", choices=("FP32", "FP16"), default="FP16",
                   help="with --trt-accelerator or --backend tensorrt")
    p.add_argument("--plans-on-serving-gpu", action="store_true",
                   help="with --backend tensorrt: do not build the engine plans here (no GPU needed); write the ONNX "
                        "and the shapes of each plan, for the serving host's init step to build them with NVIDIA's "
                        "trtexec on the GPU that serves them (deploy/k8s/triton.yaml)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from common.errors import ConfigError
    from common.repository import model_name, versions
    from export.exporter import ParityData, export_version, load_source
    from training.engine.config import DataConfig

    repo = repo_path(args.repo)
    device = args.device or ("gpu" if args.backend == "tensorrt" else "cpu")
    options = ServingOptions(backend=args.backend, max_batch_size=args.max_batch_size, queue_delay_us=args.queue_delay_us,
                             instances=args.instances, device=device, threads=args.threads,
                             trt_accelerator=args.trt_accelerator, trt_precision=args.trt_precision,
                             trt_plans="serving" if args.plans_on_serving_gpu else "export")
    if args.text_backbone:
        from export.exporter import export_text_backbone_version

        export_text_backbone_version(repo, args.version or 1, _backbone_options(options))
        return 0
    if args.frame_backbone:
        from common.frame_backbone import FRAME_BACKBONE
        from export.backbone import export_frame_backbone

        version = args.version or (max(versions(repo, FRAME_BACKBONE), default=0) + 1)
        export_frame_backbone(repo, args.frame_backbone, version, args.weights, args.seed, args.grid, args.frame_dim,
                              _backbone_options(options))
        return 0
    if args.random_init == (args.checkpoint is not None):
        raise ConfigError("give either a CHECKPOINT or --random-init (with --model and --preset)")
    if args.backend == "tensorrt" and options.trt_plans == "export":
        from export.tensorrt import require_gpu

        require_gpu()  # before any work
    train = _checkpoint_train_config(args.checkpoint)
    limits_source = dict(train.get("data") or {})
    data_path = None if args.random_batches else (str(Path(args.data).resolve()) if args.data else limits_source.get("path"))
    if args.data:
        limits_source.pop("synth", None)  # a dataset named on the command line must exist
    limits = DataConfig(**{**{k: v for k, v in limits_source.items() if k in DataConfig.__dataclass_fields__},
                           "path": data_path or ""})
    name = args.model or train.get("model")
    preset = args.preset or train.get("preset")
    data = None
    overrides = tuple(args.overrides)
    if data_path:
        from training.engine.data import check_dataset, prepare_data

        if not name or not preset:
            raise ConfigError("parity on a dataset needs the model name and preset (--model, --preset)")
        check_dataset(limits, [args.split])
        model_overrides = tuple(train.get("model_overrides") or overrides)
        data = prepare_data(limits, name, preset, model_overrides)
        if args.random_init:
            overrides = (*overrides, *data.model_overrides())
    model, source = load_source(args.checkpoint, args.model, preset, args.seed, overrides)
    base = f"{source.name}_{source.preset}"
    version = args.version or (max(versions(repo, model_name(base, "text")), default=0) + 1)
    backbone = None
    if model.config.text.kind == "minilm":
        from common.repository import TEXT_BACKBONE
        from export.exporter import export_text_backbone_version

        if not versions(repo, TEXT_BACKBONE) and not args.no_text_backbone:
            export_text_backbone_version(repo, 1, _backbone_options(options))
        backbone = max(versions(repo, TEXT_BACKBONE), default=None)   # None: the gateway then takes the latest and says so
    manifest = export_version(model, source, repo, version, options,
                              ParityData(data=data, split=args.split, seed=args.seed), limits,
                              text_backbone_version=backbone)
    print(f"exported {base} version {version} into {repo} (backend {args.backend})")
    for part, files in manifest["files"].items():
        print(f"  {model_name(base, part):28s} {sum(f['bytes'] for f in files.values()) / 1e6:8.2f} MB")
    parity = manifest["parity"]
    print(f"parity on {parity['data']} (atol {parity['atol']:g}, rtol {parity['rtol']:g}):")
    for output, figures in parity["outputs"].items():
        print(f"  {output:36s} max |diff| {figures['max_abs']:.2e}  max rel {figures['max_rel']:.2e}")
    for direction, figures in parity["ranking"].items():
        print(f"  top-{parity['top_k']} {direction}: {figures['queries']} queries, {figures['top_k_mismatches']} mismatches")
    return 0


def _backbone_options(options):
    """The backbone is served like the towers, except that TensorRT plans are built for the towers only."""
    from dataclasses import replace

    return replace(options, backend="onnxruntime", trt_plans="export") if options.backend == "tensorrt" else options


def _checkpoint_train_config(checkpoint: str | None) -> dict:
    if checkpoint is None:
        return {}
    import json

    from common.errors import ConfigError
    from training.checkpoint import CONFIG_FILE

    path = Path(checkpoint) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{checkpoint} is not a Strata checkpoint (no {CONFIG_FILE})"
            "; a checkpoint is a run's best/ or last/ folder, e.g. $STRATA_HOME/runs/<run>/best")
    meta = json.loads(path.read_text())
    return {"model": meta.get("name"), **(meta.get("train_config") or {})}
