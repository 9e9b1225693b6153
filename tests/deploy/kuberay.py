"""Structural checks of KubeRay's resources (``ray.io/v1`` RayCluster and RayJob), which Kubernetes' own schemas do
not cover: the fields KubeRay's CRDs require, their types, and the replica bounds its operator enforces. Returns the
problems found, each naming its field; none for a sound resource."""
from __future__ import annotations

from typing import Any

import yaml

API_VERSION = "ray.io/v1"
SUBMISSION_MODES = ("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode")


def check_kuberay(doc: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    if doc.get("apiVersion") != API_VERSION:
        problems.append(f"apiVersion is {doc.get('apiVersion')!r}, KubeRay serves {API_VERSION}")
    spec = doc.get("spec") or {}
    if doc.get("kind") == "RayCluster":
        problems += _cluster(spec, "spec")
    elif doc.get("kind") == "RayJob":
        problems += _job(spec)
    else:
        problems.append(f"kind {doc.get('kind')!r} is not a KubeRay resource")
    return problems


def _job(spec: dict) -> list[str]:
    problems = []
    if not isinstance(spec.get("entrypoint"), str) or not spec["entrypoint"].strip():
        problems.append("spec.entrypoint: a command is required")
    if ("clusterSelector" in spec) == ("rayClusterSpec" in spec):
        problems.append("spec: exactly one of clusterSelector or rayClusterSpec")
    if "rayClusterSpec" in spec:
        problems += _cluster(spec["rayClusterSpec"], "spec.rayClusterSpec")
    if "clusterSelector" in spec and not _strings(spec["clusterSelector"]):
        problems.append("spec.clusterSelector: labels as strings")
    if spec.get("submissionMode", "K8sJobMode") not in SUBMISSION_MODES:
        problems.append(f"spec.submissionMode: one of {', '.join(SUBMISSION_MODES)}")
    if "runtimeEnvYAML" in spec:
        try:
            runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
        except yaml.YAMLError as err:
            runtime_env = err
        if not isinstance(runtime_env, dict) or not _strings(runtime_env.get("env_vars", {})):
            problems.append("spec.runtimeEnvYAML: a YAML mapping, its env_vars strings")
    if "submitterPodTemplate" in spec:
        problems += _pod(spec["submitterPodTemplate"], "spec.submitterPodTemplate")
    return problems


def _cluster(spec: dict, where: str) -> list[str]:
    problems = []
    head = spec.get("headGroupSpec")
    if not isinstance(head, dict):
        return [f"{where}.headGroupSpec is required"]
    problems += _group(head, f"{where}.headGroupSpec")
    names = []
    for i, group in enumerate(spec.get("workerGroupSpecs") or []):
        at = f"{where}.workerGroupSpecs[{i}]"
        if not isinstance(group.get("groupName"), str) or not group["groupName"]:
            problems.append(f"{at}.groupName is required")
        names.append(group.get("groupName"))
        problems += _group(group, at)
        bounds = [group.get(key, default) for key, default in (("minReplicas", 0), ("replicas", None),
                                                                 ("maxReplicas", None))]
        if not all(isinstance(b, int) for b in bounds if b is not None):
            problems.append(f"{at}: minReplicas, replicas and maxReplicas are integers")
        elif None not in bounds[1:] and not bounds[0] <= bounds[1] <= bounds[2]:
            problems.append(f"{at}: minReplicas <= replicas <= maxReplicas ({bounds[0]}, {bounds[1]}, {bounds[2]})")
    if len(names) != len(set(names)):
        problems.append(f"{where}.workerGroupSpecs: group names repeat")
    return problems


def _group(group: dict, where: str) -> list[str]:
    problems = []
    if not _strings(group.get("rayStartParams", {})):
        problems.append(f"{where}.rayStartParams: keys and values are strings")
    return problems + _pod(group.get("template") or {}, f"{where}.template")


def _pod(template: dict, where: str) -> list[str]:
    containers = (template.get("spec") or {}).get("containers")
    if not containers:
        return [f"{where}.spec.containers: at least one container"]
    return [f"{where}.spec.containers[{i}]: name and image are required"
            for i, c in enumerate(containers) if not c.get("name") or not c.get("image")]


def _strings(mapping: Any) -> bool:
    return isinstance(mapping, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items())
