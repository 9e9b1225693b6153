"""``strata bench store`` runs end to end at a tiny size and lists both stores in its table."""
from __future__ import annotations

from clients.cli import main


def test_bench_store_tiny(capsys, tmp_path):
    assert main(["bench", "store", "--rows", "50", "--batch", "20", "--fetch", "10", "--repeats", "2",
                 "--dtype", "float16", "--out", str(tmp_path / "stores")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "21,544 B scorer inputs + 20,480 B float32 frame_feats = 42,024 B" in lines[0]
    table = lines[lines.index(next(line for line in lines if line.startswith("dtype"))) + 1:]
    assert sorted(line.split()[1] for line in table) == ["lance", "lmdb", "npy"]
    assert (tmp_path / "stores" / "float16" / "lmdb" / "data.mdb").is_file()  # --out keeps the stores
