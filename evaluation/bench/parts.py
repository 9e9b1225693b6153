"""The local parts of a running Strata (gateway, tritonserver, Milvus Lite) as processes: the CPU they use and
their footprint in memory and on disk, for the benchmarks to report beside their figures."""
from __future__ import annotations

from pathlib import Path

PARTS = ("gateway", "tritonserver", "milvus")


def local_parts() -> dict:
    """The local parts this machine runs (their records), as psutil processes: CPU shares are theirs."""
    import psutil

    from common.records import GATEWAY, MILVUS, TRITON, running_part

    found = {}
    for name, part in zip(PARTS, (GATEWAY, TRITON, MILVUS)):
        state = running_part(part)
        if state is not None:
            try:
                found[name] = psutil.Process(state.pid)
            except psutil.NoSuchProcess:
                pass
    return found


def cpu_seconds(parts: dict) -> dict[str, float]:
    """CPU seconds (user + system) each part and its children have used so far."""
    return {name: summed_over_children(process, lambda p: sum(p.cpu_times()[:2])) for name, process in parts.items()}


def summed_over_children(process, measure) -> float:
    """``measure`` summed over a process and its descendants (those that end meanwhile count nothing)."""
    import psutil

    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += measure(member)
        except psutil.NoSuchProcess:
            pass
    return total


def footprint(settings) -> dict:
    """Resident memory (MiB) of each local part with its children, in all and private (resident less shared: the
    tensor store's memory-mapped pages are shared file pages the kernel can drop), and bytes on disk of the local
    Milvus Lite data and the local tensor store (None where they are elsewhere: a Milvus server, a Lance URI)."""
    from common.home import strata_home

    parts = local_parts()
    rss = {name: summed_over_children(process, lambda p: p.memory_info().rss) / 2**20 for name, process in parts.items()}
    private = {name: summed_over_children(process, lambda p: p.memory_info().rss - p.memory_info().shared) / 2**20
               for name, process in parts.items()}
    milvus = None if settings.milvus_uri else _bytes_under(strata_home() / "milvus")
    store_root = settings.tensor_store_root
    store = None if ":" in store_root else _bytes_under(Path(store_root))
    return {"rss_mib": rss, "private_mib": private, "milvus_bytes": milvus, "store_bytes": store}


def _bytes_under(folder: Path) -> int | None:
    if not folder.is_dir():
        return None
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
