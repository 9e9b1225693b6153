"""The evaluation commands and every benchmark import no PyTorch (``strata --help`` and ``strata bench NAME``
start fast; a benchmark loads what it measures when it runs)."""
from __future__ import annotations

import subprocess
import sys

from evaluation.cli import BENCHMARKS

MODULES = ("evaluation.cli", "evaluation.runners", "evaluation.gateway",
           *(target.split(":")[0] for target, _ in BENCHMARKS.values()))


def test_evaluation_modules_do_not_import_torch():
    code = f"import sys; import {', '.join(MODULES)}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
