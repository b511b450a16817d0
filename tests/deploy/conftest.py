"""Fixtures for the deployment tests: rendered kustomizations, promtool, the metric registry.

Everything here works without a cluster or network. Kustomize overlays are rendered by a small
renderer (`render_kustomization`) that supports exactly the features k8s/ uses - resources,
configMapGenerator (with kustomize's name hash), images and JSON6902 patches - and refuses
anything else, so a new feature cannot slip past validation unrendered. When kubectl is
installed, test_k8s_manifests.py checks this renderer against `kubectl kustomize`.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
MONITORING = K8S / "monitoring"
# Every kustomization a user may apply (or that one of them includes), rendered and validated.
KUSTOMIZATIONS = (
    "nginx",
    "base",
    "datastores/postgres",
    "datastores/redis",
    "datastores/postgres-ha",
    "datastores/redis-sentinel",
    "overlays/dev",
    "overlays/production",
    "overlays/ha",
    "monitoring",
    "monitoring/operator",
    "monitoring/prometheus-adapter",
)
# The ones that hold the Aura Deployment.
APP_KUSTOMIZATIONS = ("base", "overlays/dev", "overlays/production", "overlays/ha")
# Grafana variables in dashboard queries and what promtool sees in their place.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h"}
# The rule files prometheus.yml loads, in its order.
RULE_FILES = ("alert-rules.yml", "slo-rules.yml")

_KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "configMapGenerator", "images", "patches"}
_GENERATOR_KEYS = {"name", "namespace", "behavior", "files", "envs", "literals"}
_GENERATED = "__generated__"


class UnsupportedKustomization(ValueError):
    """The kustomization uses a feature this renderer does not implement."""


# --- Kustomize renderer ---------------------------------------------------------------------


def render_kustomization(root: Path) -> list[dict]:
    """What `kubectl kustomize root` prints, as a list of objects (order aside)."""
    docs = _build(root)
    _apply_name_hashes(docs)
    return docs


def _build(root: Path) -> list[dict]:
    spec = yaml.safe_load((root / "kustomization.yaml").read_text())
    unknown = set(spec) - _KUSTOMIZATION_KEYS
    if unknown:
        raise UnsupportedKustomization(f"{root}: {sorted(unknown)} not supported by tests/deploy")
    docs: list[dict] = []
    for entry in spec.get("resources", []):
        path = root / entry
        if path.is_dir():
            docs += _build(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for generator in spec.get("configMapGenerator", []):
        _generate_config_map(root, generator, docs)
    for patch in spec.get("patches", []):
        _apply_patch(root, patch, docs)
    for image in spec.get("images", []):
        _set_image(image, docs)
    return docs


def _generate_config_map(root: Path, generator: dict, docs: list[dict]) -> None:
    unknown = set(generator) - _GENERATOR_KEYS
    if unknown:
        raise UnsupportedKustomization(f"configMapGenerator {sorted(unknown)} not supported")
    data: dict[str, str] = {}
    for entry in generator.get("files", []):
        key, _, path = entry.rpartition("=")
        data[key or Path(path).name] = (root / path).read_text()
    for env_file in generator.get("envs", []):
        for line in (root / env_file).read_text().splitlines():
            line = line.lstrip()
            if line and not line.startswith("#"):
                key, sep, value = line.partition("=")
                if not sep:
                    raise UnsupportedKustomization(f"{env_file}: {line!r} has no '='")
                data[key] = value
    for literal in generator.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    name, namespace = generator["name"], generator.get("namespace")
    existing = [
        d
        for d in docs
        if d.get(_GENERATED) and d["metadata"]["name"] == name and d["metadata"].get("namespace") == namespace
    ]
    behavior = generator.get("behavior", "create")
    if behavior == "create":
        assert not existing, f"ConfigMap {name} generated twice"
        metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data, _GENERATED: True})
    elif behavior in ("merge", "replace"):
        assert len(existing) == 1, f"{behavior}: no generated ConfigMap {name} to {behavior}"
        if behavior == "replace":
            existing[0]["data"] = {}
        existing[0]["data"].update(data)
    else:
        raise UnsupportedKustomization(f"configMapGenerator behavior {behavior!r}")


def _apply_patch(root: Path, patch: dict, docs: list[dict]) -> None:
    if set(patch) != {"target", "patch"} or set(patch["target"]) - {"kind", "name"}:
        raise UnsupportedKustomization(f"only inline JSON6902 patches with kind/name targets: {patch}")
    operations = yaml.safe_load(patch["patch"])
    if not isinstance(operations, list):
        raise UnsupportedKustomization("strategic-merge patches are not supported; use JSON6902")
    targets = [
        d
        for d in docs
        if all(d.get("kind") == v if k == "kind" else d["metadata"]["name"] == v for k, v in patch["target"].items())
    ]
    assert targets, f"patch target {patch['target']} matches nothing"
    for doc in targets:
        for operation in operations:
            _json_patch(doc, operation)


def _json_patch(doc: dict, operation: dict) -> None:
    op = operation["op"]
    if op not in ("add", "replace", "remove"):
        raise UnsupportedKustomization(f"JSON patch op {op!r}")
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in operation["path"].split("/")[1:]]
    node = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op == "add":
            node.insert(index, copy.deepcopy(operation["value"]))
        elif op == "replace":
            node[index] = copy.deepcopy(operation["value"])
        else:
            del node[index]
    else:
        if op in ("replace", "remove"):
            assert last in node, f"{operation['path']}: nothing to {op}"
        if op == "remove":
            del node[last]
        else:
            node[last] = copy.deepcopy(operation["value"])


def pod_specs(doc: dict) -> list[dict]:
    """The pod spec(s) inside a workload object (none for other kinds)."""
    spec = doc.get("spec") or {}
    if doc.get("kind") == "Pod":
        return [spec]
    if doc.get("kind") == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    template = spec.get("template") if isinstance(spec, dict) else None
    return [template["spec"]] if isinstance(template, dict) and "spec" in template else []


def containers(pod_spec: dict) -> list[dict]:
    """Init containers and containers of a pod spec."""
    return pod_spec.get("initContainers", []) + pod_spec.get("containers", [])


def _split_image(image: str) -> tuple[str, str]:
    """'registry/name:tag' -> ('registry/name', ':tag'); digests likewise with '@'."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, "@" + digest
    head, sep, tag = image.rpartition(":")
    if sep and "/" not in tag:
        return head, ":" + tag
    return image, ""


def _set_image(image: dict, docs: list[dict]) -> None:
    if set(image) - {"name", "newName", "newTag"}:
        raise UnsupportedKustomization(f"images: {image}")
    for doc in docs:
        for pod_spec in pod_specs(doc):
            for container in containers(pod_spec):
                name, suffix = _split_image(container["image"])
                if name == image["name"]:
                    tag = f":{image['newTag']}" if "newTag" in image else suffix
                    container["image"] = image.get("newName", name) + tag


def _config_map_hash(config_map: dict) -> str:
    """kustomize's name suffix: sha256 of the Go-JSON encoding, 10 hex chars, vowels mapped.

    kustomize means to hash kind, name and data, but it looks the name up as one field called
    "metadata/name", finds nothing and hashes "" - so the name is always empty here too.
    """
    encoded = json.dumps(
        {"data": config_map["data"] or "", "kind": "ConfigMap", "name": ""},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    # Go's encoding/json escapes these; the hash is over Go's bytes.
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        encoded = encoded.replace(char, escape)
    digest = hashlib.sha256(encoded.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _apply_name_hashes(docs: list[dict]) -> None:
    renames: dict[tuple[str | None, str], str] = {}
    for doc in docs:
        if doc.pop(_GENERATED, False):
            old = doc["metadata"]["name"]
            doc["metadata"]["name"] = f"{old}-{_config_map_hash(doc)}"
            renames[(doc["metadata"].get("namespace"), old)] = doc["metadata"]["name"]
    for doc in docs:
        namespace = doc.get("metadata", {}).get("namespace")
        for pod_spec in pod_specs(doc):
            refs = [v["configMap"] for v in pod_spec.get("volumes", []) if "configMap" in v]
            for container in containers(pod_spec):
                refs += [e["configMapRef"] for e in container.get("envFrom", []) if "configMapRef" in e]
                refs += [
                    e["valueFrom"]["configMapKeyRef"]
                    for e in container.get("env", [])
                    if "configMapKeyRef" in e.get("valueFrom", {})
                ]
            for ref in refs:
                ref["name"] = renames.get((namespace, ref["name"]), ref["name"])


# --- PromQL ---------------------------------------------------------------------------------

_PROMQL_TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<range>\[[^\]]*\])
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[{}(),=<>+\-*/^%])
  | (?P<space>\s+)
""",
    re.VERBOSE,
)
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# Aggregations may be followed by `by (...)` instead of `(`, so they are known by name.
_AGGREGATIONS = {
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
}
_KEYWORDS = _GROUPING | _AGGREGATIONS | {"bool", "and", "or", "unless", "inf", "nan"}


def promql_references(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """Metric names in an expression with the labels their matchers use, and grouping labels.

    A deliberately small lexer for the PromQL written in this repository (promtool checks the
    full syntax); it refuses what it does not understand, such as offset or bare `{...}`.
    """
    tokens = []
    position = 0
    while position < len(expr):
        match = _PROMQL_TOKEN.match(expr, position)
        if not match:
            raise ValueError(f"cannot read PromQL at {expr[position:]!r}")
        position = match.end()
        if match.lastgroup not in ("space", "range"):
            tokens.append((match.lastgroup, match.group()))
    metrics: dict[str, set[str]] = {}
    grouping: set[str] = set()
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else None
        if kind == "ident" and value in _GROUPING and following == "(":
            i += 2
            while tokens[i][1] != ")":
                if tokens[i][0] == "ident":
                    grouping.add(tokens[i][1])
                i += 1
        elif kind == "ident" and value == "offset":
            raise ValueError("offset is not supported by this check")
        elif kind == "ident" and value not in _KEYWORDS and following != "(":
            labels = metrics.setdefault(value, set())
            if following == "{":
                i += 2
                while tokens[i][1] != "}":
                    if tokens[i][0] == "ident":
                        labels.add(tokens[i][1])
                    i += 1
        elif value == "{":
            raise ValueError("a selector without a metric name is not supported by this check")
        i += 1
    return metrics, grouping


def promql_for_promtool(expr: str) -> str:
    """The expression with Grafana's variables replaced by durations promtool accepts."""
    for variable, duration in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, duration)
    return expr


# --- Fixtures -------------------------------------------------------------------------------


def _find(docs: list[dict], kind: str, name: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def _config_map_data(docs: list[dict], base_name: str) -> dict[str, str]:
    matches = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and re.fullmatch(rf"{re.escape(base_name)}-[a-z0-9]{{10}}", d["metadata"]["name"])
    ]
    assert len(matches) == 1, f"expected one generated ConfigMap {base_name}-<hash>"
    return matches[0]["data"]


class K8sHelpers:
    """What tests need to walk manifests, handed out by the `k8s` fixture (no conftest imports)."""

    root = K8S
    monitoring = MONITORING
    kustomizations = KUSTOMIZATIONS
    render = staticmethod(render_kustomization)
    pod_specs = staticmethod(pod_specs)
    containers = staticmethod(containers)
    # find(docs, kind, name) -> the one object of that kind and name
    find = staticmethod(_find)
    # config_map_data(docs, "aura-config") -> data of the generated ConfigMap aura-config-<hash>
    config_map_data = staticmethod(_config_map_data)


class PromQLHelpers:
    """PromQL helpers, handed out by the `promql` fixture."""

    references = staticmethod(promql_references)
    for_promtool = staticmethod(promql_for_promtool)


@pytest.fixture(scope="session")
def k8s() -> K8sHelpers:
    """Paths, the kustomize renderer and walkers over Kubernetes objects."""
    return K8sHelpers()


@pytest.fixture(scope="session")
def promql() -> PromQLHelpers:
    """promql.references(expr) and promql.for_promtool(expr)."""
    return PromQLHelpers()


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """Every kustomization of KUSTOMIZATIONS, rendered."""
    return {name: render_kustomization(K8S / name) for name in KUSTOMIZATIONS}


@pytest.fixture(params=KUSTOMIZATIONS)
def kustomization(request, rendered) -> tuple[str, list[dict]]:
    """Each kustomization in turn: (name, rendered objects)."""
    return request.param, rendered[request.param]


@pytest.fixture(params=APP_KUSTOMIZATIONS)
def app_kustomization(request, rendered) -> tuple[str, list[dict]]:
    """Each kustomization that holds the Aura Deployment: (name, rendered objects)."""
    return request.param, rendered[request.param]


@pytest.fixture(scope="session")
def manifest_files() -> list[Path]:
    """Every Kubernetes manifest file under k8s/ (templates included), not tool configs."""
    files = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        if docs and all(isinstance(d, dict) and "kind" in d and "apiVersion" in d for d in docs):
            files.append(path)
    return files


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path to promtool. Missing promtool fails the test: it is part of the test environment."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed: `apt-get install -y prometheus` (Debian) puts it "
            "in /usr/bin; .ci/run installs it",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def run_promtool(promtool):
    """run_promtool(*args, cwd=None) -> CompletedProcess; fails the test with promtool's output."""

    def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        # A bound, not a speed check: the 30-day SLO rule tests can take minutes on a loaded machine.
        result = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
        return result

    return run


@pytest.fixture(scope="session")
def alert_rules() -> dict:
    """The rules Prometheus loads: alert-rules.yml's groups then slo-rules.yml's (generated by
    dashboards/build.py), as one parsed rule file."""
    groups = []
    for name in RULE_FILES:
        groups += yaml.safe_load((MONITORING / "prometheus" / name).read_text())["groups"]
    return {"groups": groups}


@pytest.fixture(scope="session")
def alerts(alert_rules) -> dict[str, dict]:
    """Every alerting rule by name."""
    rules = [r for g in alert_rules["groups"] for r in g["rules"] if "alert" in r]
    by_name = {r["alert"]: r for r in rules}
    assert len(by_name) == len(rules), "alert names must be unique"
    return by_name


@pytest.fixture(scope="session")
def build_module():
    """dashboards/build.py, imported (it is a script, not a package) as running it imports it:
    with dashboards/ on sys.path, where its package aura_monitoring is."""
    sys.path.insert(0, str(REPO / "dashboards"))
    spec = importlib.util.spec_from_file_location("aura_dashboards_build", REPO / "dashboards" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def monitoring(build_module):
    """dashboards/aura_monitoring, the package build.py runs: monitoring.slo.SLOS and so on."""
    return importlib.import_module("aura_monitoring")


@pytest.fixture(scope="session")
def dashboards() -> dict[str, dict]:
    """The committed dashboard JSON files, parsed, by file name."""
    directory = MONITORING / "grafana" / "dashboards"
    return {p.name: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


@pytest.fixture(scope="session")
def deployment_doc() -> str:
    """docs/deployment.md."""
    return (REPO / "docs" / "deployment.md").read_text()


@pytest.fixture(scope="session")
def documented_queries(deployment_doc) -> list[str]:
    """Every ```promql block of docs/deployment.md."""
    return [block.strip() for block in re.findall(r"```promql\n(.*?)```", deployment_doc, re.DOTALL)]


# What prometheus-adapter puts in place of its template variables when the HPA asks for the
# pods of a Deployment (GroupBy: the pod resource's label; LabelMatchers: namespace and pods).
ADAPTER_TEMPLATE_VALUES = {
    "<<.GroupBy>>": "pod",
    "<<.LabelMatchers>>": 'namespace="aura",pod=~"aura-5d9f-abcde|aura-5d9f-fghij"',
}


def render_adapter_query(template: str) -> str:
    """An adapter metricsQuery as the adapter sends it to Prometheus."""
    for variable, value in ADAPTER_TEMPLATE_VALUES.items():
        template = template.replace(variable, value)
    assert "<<" not in template, f"unknown adapter template variable in {template!r}"
    return template


@pytest.fixture(scope="session")
def adapter_config() -> dict:
    """config.yaml of the prometheus-adapter ConfigMap (k8s/monitoring/prometheus-adapter), parsed."""
    config_map = yaml.safe_load((MONITORING / "prometheus-adapter" / "configmap.yaml").read_text())
    return yaml.safe_load(config_map["data"]["config.yaml"])


@pytest.fixture(scope="session")
def promql_expressions(dashboards, alert_rules, documented_queries, adapter_config) -> list[tuple[str, str]]:
    """(where, expression) for every PromQL expression a dashboard, rule, the adapter or the
    docs use."""
    found = []
    for filename, dashboard in dashboards.items():
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                found.append((f"{filename}: {panel['title']} {target['refId']}", target["expr"]))
    for group in alert_rules["groups"]:
        for rule in group["rules"]:
            found.append((f"alert-rules.yml: {rule.get('alert') or rule.get('record')}", rule["expr"]))
    for rule in adapter_config["rules"]:
        found.append((f"prometheus-adapter: {rule['name']['as']}", render_adapter_query(rule["metricsQuery"])))
    found += [(f"docs/deployment.md query {i + 1}", q) for i, q in enumerate(documented_queries)]
    return found
