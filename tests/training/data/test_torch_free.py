import subprocess
import sys


def test_metrics_reader_encoder_and_concepts_do_not_import_torch():
    code = ("import sys, training.metrics, training.data.hgr_format, training.data.encode, "
            "training.data.sampling, training.data.concepts; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
