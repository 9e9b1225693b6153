"""Every model of the zoo declares its serving tables beside its code, and reading them imports no PyTorch."""
from __future__ import annotations

import subprocess
import sys


def test_every_model_of_the_zoo_declares_serving_tables_the_gateway_reads_without_torch():
    code = ("import sys; import serving.gateway.first_stage; "
            "from training.models.factory import list_models, serving_tables; "
            "print([n for n in list_models() if serving_tables(n).choices.keys() != {'videos', 'captions'}]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["[]", "[]"]
