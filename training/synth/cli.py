"""``strata synth`` and ``strata synth-check`` (torch-free; heavy imports happen in the handlers)."""
from __future__ import annotations

import argparse
import time

from common.conventions import add_command, add_json_flag, emit_json, non_negative_int, positive_int, say
from training.synth.config import SynthConfig

_DEFAULTS = SynthConfig()


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "synth",
        help="generate a SynthVTR dataset (HGR's file contents, in one flat folder)",
        description="Generate a SynthVTR dataset, deterministically. Its files hold what HGR's release holds "
                    "(captions, split names, frame features, plus region features, role graphs and hard "
                    "negatives), but flat in one folder rather than under annotation/, public_split/ and "
                    "ordered_feature/. An empty or new --out is filled; a SynthVTR folder is overwritten (or left "
                    "alone when it already holds the same config); any other non-empty folder is refused.",
        examples=["strata synth --out ./synth-small --videos 600 --captions-per-video 4",
                  "strata train hgr_synthvtr --set data.path=./synth-small --set run_name=hgr-small   "
                  "# train on it"],
    )
    p.add_argument("--out", required=True, help="output folder (relative: to the current folder)")
    p.add_argument("--videos", type=positive_int, default=_DEFAULTS.videos,
                   help="videos over all splits (at least one per split: 4)")
    p.add_argument("--captions-per-video", type=positive_int, default=_DEFAULTS.captions_per_video,
                   help="captions per video")
    p.add_argument("--seed", type=non_negative_int, default=_DEFAULTS.seed,
                   help="the same seed and sizes give the same files")
    p.add_argument("--noise", type=float, default=_DEFAULTS.noise, help="feature noise std")
    p.add_argument("--miss-rate", type=float, default=_DEFAULTS.miss_rate, help="detector miss probability")
    p.add_argument("--distractors", type=non_negative_int, default=_DEFAULTS.distractors, help="min distractor regions/frame")
    p.add_argument("--regions-per-frame", type=positive_int, default=_DEFAULTS.regions_per_frame,
                   help="regions per frame (the two entities of an event, the whole-frame region, distractors)")
    p.add_argument("--no-scene-region", dest="scene_region", action="store_false",
                   help="no whole-frame region (the scene then shows only in frame features, as SynthVTR 2)")
    p.add_argument("--events", type=positive_int, nargs=2, metavar=("MIN", "MAX"), default=_DEFAULTS.events_per_video,
                   help="events per video (1-3)")
    p.add_argument("--frames", type=positive_int, nargs=2, metavar=("MIN", "MAX"), default=_DEFAULTS.frames,
                   help="frames per video")
    p.add_argument("--split-fractions", type=float, nargs=3, metavar=("VAL", "TST", "TST_UNSEEN"),
                   default=(_DEFAULTS.val_fraction, _DEFAULTS.test_fraction, _DEFAULTS.unseen_fraction),
                   help="fractions of the videos in val, tst and tst_unseen (the rest: trn)")
    p.add_argument("--frame-dim", type=positive_int, default=_DEFAULTS.frame_dim, help="frame feature size")
    p.add_argument("--region-dim", type=positive_int, default=_DEFAULTS.region_dim, help="region feature size")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_synth)

    c = add_command(
        subparsers, "synth-check",
        help="probe a SynthVTR dataset: role binding, shortcuts, parser accuracy, baseline headroom",
        examples=["strata synth-check ./synth-small", "strata synth-check ./synth-small --json probes.json"],
    )
    c.add_argument("dir", help="a folder written by `strata synth`")
    add_json_flag(c, "the probes' figures")
    c.set_defaults(func=_synth_check)


def config_from_args(args: argparse.Namespace) -> SynthConfig:
    from common.config import from_dict

    return from_dict(SynthConfig, {
        "videos": args.videos,
        "captions_per_video": args.captions_per_video,
        "seed": args.seed,
        "noise": args.noise,
        "miss_rate": args.miss_rate,
        "distractors": args.distractors,
        "regions_per_frame": args.regions_per_frame,
        "scene_region": args.scene_region,
        "events_per_video": list(args.events),
        "frames": list(args.frames),
        "frame_dim": args.frame_dim,
        "region_dim": args.region_dim,
        "val_fraction": args.split_fractions[0],
        "test_fraction": args.split_fractions[1],
        "unseen_fraction": args.split_fractions[2],
    }, where="strata synth")


def _synth(args: argparse.Namespace) -> int:
    from training.synth.generator import generate

    config = config_from_args(args)
    start = time.perf_counter()
    summary, wrote = generate(config, args.out, progress=not args.no_progress)
    splits = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
    what = f"written in {time.perf_counter() - start:.1f} s" if wrote else "already up to date (same config)"
    print(f"SynthVTR {summary['version']} in {args.out}: {config.videos} videos x {config.captions_per_video} "
          f"captions ({splits}); {what}")
    return 0


def _synth_check(args: argparse.Namespace) -> int:
    from training.synth.check import format_report, run_checks

    report = run_checks(args.dir)
    say(args)(format_report(report))
    emit_json(args, report)
    return 0
