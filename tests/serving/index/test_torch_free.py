"""The index, the Milvus server and the process helper import no PyTorch (the gateway starts fast)."""
from __future__ import annotations

import subprocess
import sys

MODULES = ("serving.process", "serving.index.milvus_index", "serving.index.milvus_server")


def test_index_modules_do_not_import_torch():
    code = f"import sys; import {', '.join(MODULES)}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
