"""Serving and the export CLI's registration import no PyTorch (the gateway and `strata --help` start fast)."""
from __future__ import annotations

import subprocess
import sys

MODULES = ("export.runner", "export.versions", "serving.cli", "serving.triton.client", "serving.triton.server",
           "serving.triton.swap", "common.repository", "export.cli", "export.triton_config", "export.batches")


def test_serving_modules_do_not_import_torch():
    code = f"import sys; import {', '.join(MODULES)}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
