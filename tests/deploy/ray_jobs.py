"""A RayJob manifest's entrypoint, run exactly as written on a local Ray head, the way KubeRay submits it: the
string through Ray's job submission API, the manifest's ``runtimeEnvYAML`` as the runtime environment (here with a
test's values for its variables)."""
from __future__ import annotations

import time
from pathlib import Path

import yaml

MANIFESTS = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


def manifest_job(name: str) -> tuple[str, dict]:
    """(entrypoint, runtime environment) of the RayJob in ``deploy/k8s/<name>``."""
    spec = yaml.safe_load((MANIFESTS / name).read_text())["spec"]
    return spec["entrypoint"], yaml.safe_load(spec.get("runtimeEnvYAML") or "{}") or {}


def run_manifest_job(dashboard: str, name: str, env_vars: dict[str, str], timeout_s: float = 900) -> tuple[str, str]:
    """Submit ``name``'s entrypoint with ``env_vars`` for the manifest's own variables (the same names) and wait for
    it to end: (final status, its logs)."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    entrypoint, runtime_env = manifest_job(name)
    assert set(env_vars) == set(runtime_env.get("env_vars", {})), f"{name} reads {runtime_env.get('env_vars')}"
    client = JobSubmissionClient(dashboard)
    job = client.submit_job(entrypoint=entrypoint, runtime_env={**runtime_env, "env_vars": env_vars})
    ended = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
    deadline = time.monotonic() + timeout_s
    while (status := client.get_job_status(job)) not in ended:
        if time.monotonic() > deadline:
            client.stop_job(job)
            raise AssertionError(f"{name}: still {status} after {timeout_s:.0f} s:\n{client.get_job_logs(job)[-3000:]}")
        time.sleep(1)
    return status.value, client.get_job_logs(job)
