"""The client library and the query commands need grpc and NumPy, never torch."""
from __future__ import annotations

import subprocess
import sys


def test_client_library_and_query_commands_import_without_torch():
    code = ("import sys; import clients.client, clients.service_cli, deploy.stack, serving.gateway.server; "
            "from clients.cli import build_parser; build_parser(); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
