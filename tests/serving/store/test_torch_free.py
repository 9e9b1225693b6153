"""The tensor store imports no PyTorch (the gateway reads it and starts fast)."""
from __future__ import annotations

import subprocess
import sys

MODULES = ("serving.store", "serving.store.base", "serving.store.record", "serving.store.lmdb_store",
           "serving.store.lance_store")


def test_store_modules_do_not_import_torch():
    code = f"import sys; import {', '.join(MODULES)}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
