"""The Kubernetes manifests: strictly schema-valid, rendered overlays included, and consistent.

Schema validation is offline (kubernetes-validate ships the schemas) and strict: a field the
schema does not know - a typo - fails, where `kubectl apply` would silently drop it.
"""

from __future__ import annotations

import copy
import functools
import re
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

# Validated against an old supported Kubernetes and the newest kubernetes-validate knows, so a
# field that is too new, or already removed, fails either way.
KUBERNETES_VERSIONS = ("1.30", "1.37")
CRD_GROUP = "monitoring.coreos.com/"
SPEC_ANNOTATIONS = {  # the monitoring spec's "Prometheus Configuration"
    "prometheus.io/scrape": "true",
    "prometheus.io/port": "8000",
    "prometheus.io/path": "/metrics",
}
# Issue 13: the port annotation names the `metrics` port (the Gunicorn master's), not the
# spec's 8000, whose /metrics waits in the listen backlog with requests (docs/deployment.md,
# "Where this deployment deviates from the spec").
SCRAPE_ANNOTATIONS = {**SPEC_ANNOTATIONS, "prometheus.io/port": "9100"}
MIGRATION_COMMAND = ["flask", "--app", "wsgi", "db", "upgrade"]
SECRET_KEYS_THE_APP_NEEDS = {"JWT_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "METRICS_AUTH_TOKEN"}
# The kubelet's SIGKILL must come after Gunicorn's own deadline: margin in seconds.
GRACE_MARGIN = range(1, 16)


def validate_strictly(doc: dict) -> None:
    """Validate one object against every KUBERNETES_VERSIONS schema (CRDs: by validate_crd)."""
    if doc["apiVersion"].startswith(CRD_GROUP):
        validate_crd(doc)
        return
    if doc["apiVersion"].startswith(CNPG_GROUP):
        validate_cnpg_cluster(doc)
        return
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


# Fields of the two Prometheus Operator kinds used here; no schema ships for CRDs offline.
_CRD_FIELDS = {
    "PrometheusRule": {
        "spec": {"groups"},
        "group": {"name", "interval", "rules", "limit", "partial_response_strategy"},
        "rule": {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"},
    },
    "PodMonitor": {
        "spec": {"selector", "podMetricsEndpoints", "namespaceSelector", "jobLabel", "podTargetLabels"},
        "endpoint": {
            "port",
            "path",
            "interval",
            "scrapeTimeout",
            "scheme",
            "authorization",
            "relabelings",
            "metricRelabelings",
            "honorLabels",
            "tlsConfig",
        },
    },
}


def validate_crd(doc: dict) -> None:
    """Strict structural check of a PrometheusRule or PodMonitor."""
    kind = doc["kind"]
    assert doc["apiVersion"] == "monitoring.coreos.com/v1", doc["apiVersion"]
    assert kind in _CRD_FIELDS, f"no structural check for {kind}"
    fields = _CRD_FIELDS[kind]
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}, sorted(doc)
    assert set(doc["metadata"]) <= {"name", "namespace", "labels", "annotations"}
    assert doc["metadata"]["name"] and doc["metadata"]["namespace"]
    assert set(doc["spec"]) <= fields["spec"], sorted(set(doc["spec"]) - fields["spec"])
    if kind == "PrometheusRule":
        for group in doc["spec"]["groups"]:
            assert set(group) <= fields["group"] and group["name"] and group["rules"]
            for rule in group["rules"]:
                assert set(rule) <= fields["rule"], sorted(set(rule) - fields["rule"])
                assert ("alert" in rule) != ("record" in rule) and isinstance(rule["expr"], str)
                for key in ("labels", "annotations"):
                    assert all(isinstance(v, str) for v in rule.get(key, {}).values())
    else:
        assert doc["spec"]["selector"]["matchLabels"]
        for endpoint in doc["spec"]["podMetricsEndpoints"]:
            assert set(endpoint) <= fields["endpoint"], sorted(set(endpoint) - fields["endpoint"])


CNPG_GROUP = "postgresql.cnpg.io/"
# The CloudNativePG Cluster fields k8s/datastores/postgres-ha uses, from its API reference
# (postgresql.cnpg.io/v1); no schema ships for it offline either.
_CLUSTER_FIELDS = {
    "spec": {
        "instances",
        "imageName",
        "primaryUpdateStrategy",
        "postgresql",
        "bootstrap",
        "storage",
        "affinity",
        "resources",
        "description",
        "monitoring",
    },
    "postgresql": {"parameters", "synchronous", "pg_hba"},
    "synchronous": {"method", "number", "dataDurability"},
    "initdb": {"database", "owner", "secret"},
    "storage": {"size", "storageClass"},
    "affinity": {"enablePodAntiAffinity", "topologyKey", "podAntiAffinityType", "nodeSelector", "tolerations"},
}


def validate_cnpg_cluster(doc: dict) -> None:
    """Strict structural check of a CloudNativePG Cluster: known fields only, and a failover that
    loses no acknowledged commit (a synchronous standby, and one more instance to fail over to)."""
    assert doc["apiVersion"] == "postgresql.cnpg.io/v1" and doc["kind"] == "Cluster", doc["kind"]
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}, sorted(doc)
    assert doc["metadata"]["name"] and doc["metadata"]["namespace"]
    spec = doc["spec"]
    for key, fields in (
        ("spec", spec),
        ("postgresql", spec.get("postgresql", {})),
        ("synchronous", spec.get("postgresql", {}).get("synchronous", {})),
        ("initdb", spec.get("bootstrap", {}).get("initdb", {})),
        ("storage", spec.get("storage", {})),
        ("affinity", spec.get("affinity", {})),
    ):
        assert set(fields) <= _CLUSTER_FIELDS[key], f"{key}: {sorted(set(fields) - _CLUSTER_FIELDS[key])}"
    assert set(spec.get("bootstrap", {})) <= {"initdb"}
    assert spec["instances"] >= 3 and spec["storage"]["size"]
    synchronous = spec["postgresql"]["synchronous"]
    assert synchronous["method"] in ("any", "first") and 1 <= synchronous["number"] < spec["instances"]
    assert spec["postgresql"]["parameters"].get("synchronous_commit", "on") in ("on", "remote_apply")


def objects(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def aura_pod(docs: list[dict]) -> dict:
    """The pod template of the Aura Deployment."""
    [deployment] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "aura"]
    return deployment["spec"]["template"]


def app_container(pod_template: dict) -> dict:
    [container] = [c for c in pod_template["spec"]["containers"] if c["name"] == "aura"]
    return container


def nginx_container(pod_template: dict) -> dict:
    [container] = [c for c in pod_template["spec"]["containers"] if c["name"] == "nginx"]
    return container


def pod_ports(pod_template: dict) -> dict[str, int]:
    """Named container ports of every container of the pod."""
    return {p["name"]: p["containerPort"] for c in pod_template["spec"]["containers"] for p in c.get("ports", [])}


def fail_validation(where: str, doc: dict, error: kubernetes_validate.ValidationError):
    pytest.fail(f"{where}: {doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, error.path))}: {error.message}")


# --- Schema validation ----------------------------------------------------------------------


def test_manifest_files_are_found(manifest_files, k8s):
    """The walk must see the manifests, or every test over them would pass vacuously."""
    names = {p.relative_to(k8s.root).as_posix() for p in manifest_files}
    assert {"base/deployment.yaml", "base/secret.template.yaml", "monitoring/operator/prometheusrule.yaml"} <= names


def test_every_manifest_file_is_strictly_valid(manifest_files, k8s):
    """Each file on its own, the Secret templates included (they must stay apply-able)."""
    for path in manifest_files:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                try:
                    validate_strictly(doc)
                except kubernetes_validate.ValidationError as error:
                    fail_validation(str(path.relative_to(k8s.root)), doc, error)


def test_rendered_kustomization_is_strictly_valid(kustomization):
    """What `kubectl apply -k` would send, generated ConfigMaps and patched fields included."""
    name, docs = kustomization
    assert docs, f"{name} renders nothing"
    for doc in docs:
        try:
            validate_strictly(doc)
        except kubernetes_validate.ValidationError as error:
            fail_validation(name, doc, error)


def test_strict_validation_catches_a_misspelt_field(rendered):
    """The proof that validation is strict: one typo deep in the pod spec fails."""
    deployment = copy.deepcopy(aura_pod(rendered["overlays/production"]))
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "aura"},
        "spec": {"selector": {"matchLabels": deployment["metadata"]["labels"]}, "template": deployment},
    }
    validate_strictly(deployment)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=False)  # lenient: passes
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        validate_strictly(deployment)


def test_cnpg_check_catches_a_misspelt_field_and_asynchronous_replication(rendered):
    """The CloudNativePG Cluster of the HA datastores: a typo fails, and so does losing the
    synchronous standby (a failover could then lose acknowledged commits)."""
    [cluster] = copy.deepcopy(objects(rendered["datastores/postgres-ha"], "Cluster"))
    validate_strictly(cluster)
    typo = copy.deepcopy(cluster)
    typo["spec"]["storage"]["sise"] = typo["spec"]["storage"].pop("size")
    with pytest.raises(AssertionError, match="sise"):
        validate_strictly(typo)
    asynchronous = copy.deepcopy(cluster)
    asynchronous["spec"]["postgresql"]["parameters"]["synchronous_commit"] = "local"
    with pytest.raises(AssertionError):
        validate_strictly(asynchronous)


def test_crd_check_catches_a_misspelt_field(rendered):
    """Same for the PrometheusRule, which no offline Kubernetes schema covers."""
    [rule] = copy.deepcopy(objects(rendered["monitoring/operator"], "PrometheusRule"))
    validate_crd(rule)
    first = rule["spec"]["groups"][0]["rules"][0]
    first["annotation"] = first.pop("annotations")
    with pytest.raises(AssertionError, match="annotation"):
        validate_crd(rule)


# --- The renderer ---------------------------------------------------------------------------


@functools.cache
def _kubectl_with_kustomize_v5() -> str | None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    version = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True, timeout=30)
    match = re.search(r"Kustomize Version: v(\d+)", version.stdout)
    return kubectl if match and int(match.group(1)) >= 5 else None


def test_renderer_agrees_with_kubectl_kustomize(kustomization, k8s):
    """Where kubectl (kustomize v5) is installed, it renders exactly what these tests validate."""
    name, docs = kustomization
    kubectl = _kubectl_with_kustomize_v5()
    if kubectl is None:
        pytest.skip("kubectl with kustomize v5 is not installed: renderer not cross-checked")
    output = subprocess.run(
        [kubectl, "kustomize", str(k8s.root / name)], capture_output=True, text=True, timeout=60, check=True
    ).stdout

    def key(doc):
        return doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]

    theirs = {key(d): d for d in yaml.safe_load_all(output) if d}
    ours = {key(d): d for d in docs}
    assert sorted(ours) == sorted(theirs)
    for object_key, doc in ours.items():
        assert doc == theirs[object_key], object_key


def test_renderer_refuses_unsupported_features(tmp_path, k8s):
    """A kustomization feature the renderer does not know fails loudly, never half-renders."""
    (tmp_path / "kustomization.yaml").write_text("resources: []\nnamePrefix: x-\n")
    with pytest.raises(ValueError, match="namePrefix"):
        k8s.render(tmp_path)


# --- The Aura Deployment --------------------------------------------------------------------


def test_pod_template_carries_the_spec_scrape_annotations(app_kustomization):
    """Prometheus discovers pods: the annotations belong on the template, matching the port."""
    template = aura_pod(app_kustomization[1])
    annotations = template["metadata"]["annotations"]
    assert {k: annotations.get(k) for k in SCRAPE_ANNOTATIONS} == SCRAPE_ANNOTATIONS
    container = app_container(template)
    env = {e["name"]: e.get("value") for e in container["env"]}
    # The app container serves only the master's listener to the pod's network; Gunicorn binds
    # loopback, behind the nginx sidecar (test_nginx_sidecar_is_the_only_way_in).
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("metrics", 9100)]
    assert env["GUNICORN_BIND"] == "127.0.0.1:8000"
    assert env["METRICS_PORT"] == "9100"
    assert env["METRICS_HOST"] == "0.0.0.0"  # not the bind's loopback: Prometheus and the kubelet reach it


def test_only_the_monitoring_namespace_reaches_the_metrics_port(app_kustomization, rendered, k8s):
    """Issue 23: the metrics port (and the master's /healthz) was open to every pod in the cluster.
    One policy selects the Aura pods: the API port for anyone, the port the prometheus.io
    annotations name only for the namespace Prometheus runs in."""
    docs = app_kustomization[1]
    template = aura_pod(docs)
    labels = template["metadata"]["labels"]
    [policy] = [
        p for p in objects(docs, "NetworkPolicy") if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    ]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    ports = pod_ports(template)
    scraped = int(template["metadata"]["annotations"]["prometheus.io/port"])
    [prometheus] = [
        d for d in rendered["monitoring"] if d["kind"] == "StatefulSet" and "prometheus" in d["metadata"]["name"]
    ]
    monitoring = prometheus["metadata"]["namespace"]
    reaching: dict[int, list] = {}
    for rule in policy["spec"]["ingress"]:
        assert rule.get("ports"), "a rule without ports would open every port"
        for port in rule["ports"]:
            reaching.setdefault(ports.get(port["port"], port["port"]), []).append(rule.get("from"))
    assert set(reaching) == set(ports.values())
    assert reaching[ports["http"]] == [None]  # the API (nginx's port): every client
    assert reaching[scraped] == [[{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": monitoring}}}]]
    assert scraped == ports["metrics"] and app_container(template)["livenessProbe"]["httpGet"]["port"] == "metrics"


def test_termination_grace_covers_gunicorns_graceful_timeout(app_kustomization, k8s):
    """preStop pause + GUNICORN_GRACEFUL_TIMEOUT + a margin = terminationGracePeriodSeconds."""
    docs = app_kustomization[1]
    template = aura_pod(docs)
    graceful = int(k8s.config_map_data(docs, "aura-config")["GUNICORN_GRACEFUL_TIMEOUT"])
    command = app_container(template)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pause = int(command[1])
    assert template["spec"]["terminationGracePeriodSeconds"] - pause - graceful in GRACE_MARGIN
    # nginx pauses as long, then quits gracefully (finishing what Gunicorn still answers).
    [script] = nginx_container(template)["lifecycle"]["preStop"]["exec"]["command"][2:]
    assert script.startswith(f"sleep {pause}; nginx ") and " -s quit;" in script


def test_metrics_directory_is_a_per_pod_memory_volume(app_kustomization):
    """PROMETHEUS_MULTIPROC_DIR is the mount of an emptyDir in memory, for the app only."""
    template = aura_pod(app_kustomization[1])
    container = app_container(template)
    directory = next(e["value"] for e in container["env"] if e["name"] == "PROMETHEUS_MULTIPROC_DIR")
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
    [volume] = [v for v in template["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume["emptyDir"]["medium"] == "Memory"
    assert volume["emptyDir"]["sizeLimit"]
    for init in template["spec"]["initContainers"]:
        assert "PROMETHEUS_MULTIPROC_DIR" not in {e["name"] for e in init.get("env", [])}


def test_probes_use_healthz_and_readyz(app_kustomization):
    """Every probe asks the Gunicorn master's listener, never a worker: liveness /healthz (alive,
    not busy: test_saturation.py), readiness and start-up /readyz (a worker has loaded the app; no
    dependency asked: tests/gunicorn/test_readiness.py)."""
    container = app_container(aura_pod(app_kustomization[1]))
    probes = {kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert probes == {
        "livenessProbe": {"path": "/healthz", "port": "metrics"},
        "readinessProbe": {"path": "/readyz", "port": "metrics"},
        "startupProbe": {"path": "/readyz", "port": "metrics"},
    }


def test_nginx_sidecar_is_the_only_way_in(app_kustomization, k8s):
    """The Service targets the nginx sidecar, which runs k8s/nginx/nginx.conf (from the generated
    aura-nginx ConfigMap) and proxies to Gunicorn on the pod's loopback."""
    docs = app_kustomization[1]
    template = aura_pod(docs)
    nginx = nginx_container(template)
    app_env = {e["name"]: e.get("value") for e in app_container(template)["env"]}
    # the configuration is the file under k8s/nginx, mounted where the command reads it
    shipped = (k8s.root / "nginx" / "nginx.conf").read_text()
    assert k8s.config_map_data(docs, "aura-nginx") == {"nginx.conf": shipped}
    [mount] = [m for m in nginx["volumeMounts"] if m["mountPath"] == "/etc/aura-nginx"]
    [volume] = [v for v in template["spec"]["volumes"] if v["name"] == mount["name"]]
    assert re.fullmatch(r"aura-nginx-[a-z0-9]{10}", volume["configMap"]["name"])
    assert nginx["command"][:1] == ["nginx"] and nginx["command"][nginx["command"].index("-c") + 1] == (
        "/etc/aura-nginx/nginx.conf"
    )
    # /tmp/nginx (pid, spooled bodies) is writable on the read-only root
    assert "/tmp/nginx" in {m["mountPath"] for m in nginx["volumeMounts"]}
    # the Service's port is nginx's, nginx listens there, and its upstream is Gunicorn's loopback bind
    [service] = [s for s in objects(docs, "Service") if s["metadata"]["name"] == "aura"]
    [service_port] = service["spec"]["ports"]
    [nginx_port] = nginx["ports"]
    assert service_port["targetPort"] == nginx_port["name"] == "http"
    assert f"listen {nginx_port['containerPort']};" in shipped
    assert f"server {app_env['GUNICORN_BIND']};" in shipped
    assert app_env["GUNICORN_BIND"].startswith("127.0.0.1:")
    # nginx writes the headers Aura trusts, whatever the client sent
    assert "proxy_set_header X-Request-ID $request_id;" in shipped
    assert 'proxy_set_header X-Request-Start "t=${msec}";' in shipped
    assert nginx["readinessProbe"]["tcpSocket"]["port"] == "http"


def test_trusted_proxy_count_matches_the_proxies_in_front(app_kustomization, k8s):
    """Aura believes X-Forwarded-For, X-Request-ID and X-Request-Start from TRUSTED_PROXY_COUNT
    hops: the nginx sidecar, plus the Ingress where the overlay has one. One too many and clients
    forge their address; one too few and every client shares the proxy's."""
    docs = app_kustomization[1]
    hops = 1 + len(objects(docs, "Ingress"))
    assert k8s.config_map_data(docs, "aura-config")["TRUSTED_PROXY_COUNT"] == str(hops)


def test_migrations_run_before_the_app_with_the_apps_configuration(app_kustomization):
    """The initContainer runs the migration with the same image, config and secrets."""
    template = aura_pod(app_kustomization[1])
    [migrate] = template["spec"]["initContainers"]
    app = app_container(template)
    assert migrate["command"] == MIGRATION_COMMAND
    assert migrate["image"] == app["image"]
    assert migrate["envFrom"] == app["envFrom"]
    tied_to_the_app_container = {"GUNICORN_BIND", "METRICS_PORT", "METRICS_HOST", "PROMETHEUS_MULTIPROC_DIR"}
    assert migrate["env"] == [e for e in app["env"] if e["name"] not in tied_to_the_app_container]


def test_secret_keys_match_the_template(app_kustomization, k8s):
    """The pods ask for exactly the keys the Secret template documents."""
    docs = app_kustomization[1]
    template_secret = yaml.safe_load((k8s.root / "base" / "secret.template.yaml").read_text())
    documented = set(template_secret["stringData"])
    for doc in docs:
        for pod_spec in k8s.pod_specs(doc):
            for container in k8s.containers(pod_spec):
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref and ref["name"] == "aura-secrets":
                        assert ref["key"] in documented, ref["key"]
    app_keys = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for e in app_container(aura_pod(docs))["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert app_keys == SECRET_KEYS_THE_APP_NEEDS


def test_no_secret_is_ever_applied(kustomization):
    """Secrets are created by hand; a Secret in a kustomization would overwrite the real one."""
    assert not objects(kustomization[1], "Secret")


def test_hpa_owns_the_replica_count(app_kustomization, k8s):
    docs = app_kustomization[1]
    deployment = k8s.find(docs, "Deployment", "aura")
    hpa = k8s.find(docs, "HorizontalPodAutoscaler", "aura")
    assert "replicas" not in deployment["spec"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "aura"}
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert k8s.find(docs, "PodDisruptionBudget", "aura")["apiVersion"] == "policy/v1"


def test_overlays_differ_where_intended(rendered, k8s):
    """dev brings its datastores; production uses managed ones behind an Ingress."""
    dev, production = rendered["overlays/dev"], rendered["overlays/production"]
    assert {d["metadata"]["name"] for d in objects(dev, "StatefulSet")} == {"postgres", "redis"}
    assert objects(production, "StatefulSet") == []
    assert k8s.config_map_data(production, "aura-config")["TRUSTED_PROXY_COUNT"] == "2"  # Ingress + nginx
    assert objects(production, "Ingress")
    assert k8s.config_map_data(dev, "aura-config")["TRUSTED_PROXY_COUNT"] == "1"  # nginx
    assert app_container(aura_pod(dev))["image"] == "aura:dev"
    assert re.fullmatch(r".+/aura:\d+\.\d+\.\d+", app_container(aura_pod(production))["image"])


# --- Every workload -------------------------------------------------------------------------


def test_workloads_are_hardened_and_consistent(kustomization, k8s):
    """Non-root, read-only root, no privilege escalation; selectors, mounts and refs resolve."""
    name, docs = kustomization
    config_maps = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in objects(docs, "ConfigMap")}
    for doc in docs:
        for pod_spec in k8s.pod_specs(doc):
            where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
            namespace = doc["metadata"]["namespace"]
            assert pod_spec["securityContext"]["runAsNonRoot"] is True, where
            assert pod_spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
            selector = doc["spec"]["selector"]["matchLabels"]
            assert selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items(), where
            volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
            claims = {c["metadata"]["name"] for c in doc["spec"].get("volumeClaimTemplates", [])}
            for container in k8s.containers(pod_spec):
                context = container["securityContext"]
                assert context["readOnlyRootFilesystem"] is True, where
                assert context["allowPrivilegeEscalation"] is False, where
                assert context["capabilities"]["drop"] == ["ALL"], where
                assert "memory" in container["resources"]["limits"], where
                for mount in container.get("volumeMounts", []):
                    assert mount["name"] in volumes or mount["name"] in claims, f"{where}: {mount['name']}"
            for volume in volumes.values():
                if "configMap" in volume:
                    assert (namespace, volume["configMap"]["name"]) in config_maps, f"{where}: {volume}"


def test_services_select_pods_of_the_same_kustomization(kustomization, k8s):
    name, docs = kustomization
    pod_labels = [
        (d["metadata"]["namespace"], d["spec"]["template"]["metadata"]["labels"]) for d in docs if k8s.pod_specs(d)
    ]
    for service in objects(docs, "Service"):
        selector = service["spec"]["selector"]
        namespace = service["metadata"]["namespace"]
        assert any(ns == namespace and selector.items() <= labels.items() for ns, labels in pod_labels), (
            f"{name}: Service {service['metadata']['name']} selects no pod"
        )


def test_every_object_names_its_namespace(kustomization):
    """No kustomize `namespace:` is used, so each namespaced object must say where it goes."""
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for doc in kustomization[1]:
        if doc["kind"] not in cluster_scoped:
            assert doc["metadata"].get("namespace") in ("aura", "monitoring"), doc["kind"]


def test_datastores_persist(rendered, k8s):
    """Redis: an append-only file, never evicting; both datastores on volumeClaimTemplates."""
    docs = rendered["overlays/dev"]
    redis_conf = k8s.config_map_data(docs, "redis-config")["redis.conf"]
    settings = dict(
        line.split(None, 1) for line in redis_conf.splitlines() if line.strip() and not line.startswith(("#", "save"))
    )
    assert settings["appendonly"] == "yes"
    assert settings["maxmemory-policy"] == "noeviction"
    for name, data_path in (("redis", settings["dir"]), ("postgres", "/var/lib/postgresql/data")):
        statefulset = k8s.find(docs, "StatefulSet", name)
        [claim] = statefulset["spec"]["volumeClaimTemplates"]
        mounts = statefulset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        assert {"name": claim["metadata"]["name"], "mountPath": data_path} in mounts


def test_every_manifest_explains_itself(k8s):
    """House style: ops files are commented. Each YAML file under k8s/ opens with a comment."""
    for path in sorted([*k8s.root.rglob("*.yaml"), *k8s.root.rglob("*.yml")]):
        assert path.read_text().lstrip().startswith("#"), f"{path.relative_to(k8s.root)}: no leading comment"


def test_ha_overlay_has_no_single_datastore(rendered, k8s):
    """overlays/ha: Redis with three Sentinels, PostgreSQL as a three-instance Cluster, and the
    REDIS_URL its comment gives parses and names exactly those pods and that Sentinel service."""
    from aura.config import redis_target

    docs = rendered["overlays/ha"]
    [statefulset] = objects(docs, "StatefulSet")
    assert statefulset["metadata"]["name"] == "redis-ha" and statefulset["spec"]["replicas"] == 3
    [cluster] = objects(docs, "Cluster")
    assert cluster["spec"]["instances"] == 3
    assert {p["metadata"]["name"] for p in objects(docs, "PodDisruptionBudget")} == {"aura", "redis-ha"}
    comment = (k8s.root / "overlays/ha/kustomization.yaml").read_text()
    url = re.search(r"REDIS_URL=(\S+)", comment).group(1)
    target = redis_target(url)
    assert target.sentinels == tuple((f"redis-ha-{i}.redis-ha", 26379) for i in range(3))
    sentinel_conf = k8s.config_map_data(docs, "redis-ha-config")["sentinel.conf"]
    assert f"sentinel monitor {target.service} MASTER 6379 2" in sentinel_conf
    assert "aura-pg-rw:5432/aura" in comment
    configure = k8s.config_map_data(docs, "redis-ha-config")["configure.sh"]
    assert subprocess.run(["sh", "-n"], input=configure, text=True, timeout=10).returncode == 0
