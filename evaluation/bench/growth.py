"""``strata bench growth``: how latency, memory and disk grow with the corpus, through the running gateway.

At each ``--items`` size (rising; the corpus of :mod:`evaluation.bench.corpus`) it measures both directions at one
user, every query once (``strata bench e2e``'s measurement, without the throughput runs), and each local part's
memory and bytes on disk; or it reads those from a report ``strata bench e2e --json`` wrote (``--from``). It then
fits each figure against the number of items held, ``y = a + b * items`` by least squares, and gives the slope per
10,000 items, the ratio of the largest size's p50 to the smallest's, and the exponent of the power law through
those two (1: linear growth, 0: none). Memory is private resident memory (the tensor store's memory-mapped pages,
which the kernel can drop, are shared pages and not counted); disk is Milvus Lite's and the tensor store's folders.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from common.conventions import add_json_flag, emit_json, say, standalone_parser
from common.errors import ConfigError
from evaluation.bench.e2e import add_size_flags

PER = 10_000   # slopes are given per this many items


def run(argv: list[str]) -> int:
    parser = standalone_parser("strata bench growth", __doc__,
                               ["strata bench growth --items 1000 10000 100000 --json growth.json --out growth.png",
                                "strata bench growth --from e2e.json"])
    add_size_flags(parser)
    parser.add_argument("--from", dest="report", type=Path, metavar="E2E_JSON",
                        help="fit the sizes of a `strata bench e2e --json` report instead of measuring")
    parser.add_argument("--out", default="growth.png", help="the figure (PNG)")
    add_json_flag(parser, "the sizes measured and the fits")
    args = parser.parse_args(argv)
    tell = say(args)
    if args.report is not None:
        rows, footprints = _read_report(args.report)
    else:
        from evaluation.bench.e2e import measure_sizes, require_locust

        require_locust("strata bench growth (or fit an e2e report: --from E2E_JSON)")
        _, rows, footprints = measure_sizes("growth", args, [], tell)
    single = [r for r in rows if r["users"] == 1]
    sizes = sorted({r["items"] for r in single})
    if len(sizes) < 2:
        raise ConfigError(f"growth needs at least two corpus sizes, got {sizes}: pass --items with two or more")
    fits = growth(single, footprints)
    for text in table(fits):
        tell(text)
    plot(fits, Path(args.out))
    tell(f"figure: {args.out}")
    emit_json(args, {"sizes": sizes, "rows": single, "footprint": footprints, "fits": fits,
                     "load_average": os.getloadavg()[0], "cores": os.cpu_count()})
    return 0


def _read_report(path: Path) -> tuple[list[dict], list[dict]]:
    try:
        report = json.loads(path.read_text())
        return report["rows"], report["footprint"]
    except FileNotFoundError:
        raise ConfigError(f"--from {path}: no such file (write one with strata bench e2e --json FILE)") from None
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ConfigError(f"--from {path}: not a strata bench e2e report ({err!r}); "
                          f"write one with strata bench e2e --json FILE") from None


def fit_line(x: list[float], y: list[float]) -> dict[str, float]:
    """Least squares ``y = a + b x``; with the ratio last/first and the power-law exponent through the ends
    (``log(y_n / y_1) / log(x_n / x_1)``), for x rising."""
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    slope, intercept = np.polyfit(xs, ys, 1)
    ratio = float(ys[-1] / ys[0]) if ys[0] > 0 else math.nan
    exponent = math.log(ratio) / math.log(xs[-1] / xs[0]) if ratio > 0 and xs[-1] > xs[0] else math.nan
    return {"intercept": float(intercept), "per_10k": float(slope) * PER, "ratio": ratio, "exponent": exponent}


def growth(single: list[dict], footprints: list[dict]) -> dict[str, dict]:
    """The fits: p50 and p99 per direction against items held (videos + captions), private memory per part and
    bytes on disk per store against the same."""
    fits: dict[str, dict] = {}
    for direction in sorted({r["direction"] for r in single}):
        mine = sorted((r for r in single if r["direction"] == direction), key=lambda r: r["items"])
        held = [r["videos"] + r["captions"] for r in mine]
        for pct in ("p50_ms", "p99_ms"):
            values = [r[pct] for r in mine]
            fits[f"{direction} {pct}"] = {"unit": "ms", "sizes": held, "values": values, **fit_line(held, values)}
    entries = sorted(footprints, key=lambda e: e["items"])
    held = [e["videos"] + e["captions"] for e in entries]
    for part in sorted(set.intersection(*(set(e["private_mib"]) for e in entries))):
        values = [e["private_mib"][part] for e in entries]
        fits[f"{part} private memory"] = {"unit": "MiB", "sizes": held, "values": values, **fit_line(held, values)}
    for store, key in (("Milvus", "milvus_bytes"), ("tensor store", "store_bytes")):
        if all(e.get(key) is not None for e in entries):
            values = [e[key] / 2**20 for e in entries]
            fits[f"{store} on disk"] = {"unit": "MiB", "sizes": held, "values": values, **fit_line(held, values)}
    return fits


def table(fits: dict[str, dict]) -> list[str]:
    lines = ["", f"{'figure':32s} {'at each size':>36s} {'unit':>4s} {'a':>9s} {'b per 10k':>10s} "
                 f"{'last/first':>10s} {'exponent':>8s}"]
    for name, fit in fits.items():
        values = " ".join(f"{v:,.1f}" for v in fit["values"])
        lines.append(f"{name:32s} {values:>36s} {fit['unit']:>4s} {fit['intercept']:9.2f} {fit['per_10k']:10.3f} "
                     f"{fit['ratio']:10.2f} {fit['exponent']:8.2f}")
    sizes = next(iter(fits.values()))["sizes"]
    lines.append(f"items held at each size: {', '.join(f'{s:,}' for s in sizes)}; fit y = a + b * items held; "
                 f"exponent: the power law through the smallest and the largest size")
    for name, fit in fits.items():
        if fit["unit"] == "MiB" and fit["per_10k"] > 0:
            lines.append(f"{name}: {fit['per_10k'] * 2**20 / PER:,.0f} bytes per item (the slope)")
    return lines


def plot(fits: dict[str, dict], path: Path) -> None:
    """Left: the latency fits' figures (p50 and p99 at 1 user) against items held; right: memory and disk."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, (latency, memory) = plt.subplots(1, 2, figsize=(10, 3.8))
    colors = {}
    for name, fit in fits.items():
        if fit["unit"] == "ms":   # "<direction> p50_ms" / "<direction> p99_ms"
            direction, pct = name.split()
            color = colors.setdefault(direction, f"C{len(colors)}")
            p99 = pct == "p99_ms"
            latency.plot(fit["sizes"], fit["values"], marker="^" if p99 else "o", ls="--" if p99 else "-",
                         color=color, label=f"{direction} {pct[:3]}")
        else:
            disk = name.endswith("on disk")
            memory.plot(fit["sizes"], fit["values"], marker="s" if disk else "o", ls=":" if disk else "-", label=name)
    memory.set_yscale("log")
    memory.yaxis.set_major_formatter(ScalarFormatter())
    for axis, label in ((latency, "ms per query (client, 1 user)"), (memory, "MiB")):
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(ScalarFormatter())   # plain numbers, no crowded minor labels
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_xlabel("items held (videos + captions)", fontsize=8)
        axis.set_ylabel(label, fontsize=8)
        axis.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
