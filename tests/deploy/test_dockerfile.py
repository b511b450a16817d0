"""The Dockerfile agrees with the Kubernetes manifests and the repository.

No Docker engine runs in CI, so the image is not built; these checks catch the mismatches
that would only show up in a cluster: a named USER that runAsNonRoot cannot verify, a port or
a command that differs from the Deployment, a file the image needs left out of the context.
"""

from __future__ import annotations

import json
import re

import pytest


@pytest.fixture(scope="module")
def dockerfile(k8s) -> dict[str, list[str]]:
    """Instruction -> arguments of each occurrence (continuation lines joined)."""
    text = (k8s.root.parent / "Dockerfile").read_text()
    instructions: dict[str, list[str]] = {}
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, arguments = line.strip().partition(" ")
            instructions.setdefault(keyword.upper(), []).append(arguments.strip())
    return instructions


def test_user_is_the_numeric_uid_the_pods_run_as(dockerfile, rendered, k8s):
    user = dockerfile["USER"][-1]
    assert re.fullmatch(r"\d+:\d+", user), "runAsNonRoot needs a numeric USER"
    uid, gid = (int(part) for part in user.split(":"))
    for name in ("overlays/dev", "overlays/production"):
        pod = k8s.find(rendered[name], "Deployment", "aura")["spec"]["template"]["spec"]
        assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid)


def test_port_and_command_match_the_deployment(dockerfile, rendered, k8s):
    pod = k8s.find(rendered["overlays/production"], "Deployment", "aura")["spec"]["template"]["spec"]
    [container] = [c for c in pod["containers"] if c["name"] == "aura"]  # beside it: the nginx sidecar
    env = {e["name"]: e.get("value") for e in container["env"]}
    # The image alone (docker run) serves both ports on every interface; the pod keeps the same
    # ports but binds Gunicorn to loopback, behind its nginx sidecar, and exposes the listener only.
    assert dockerfile["EXPOSE"][0].split() == ["8000", "9100"]
    assert [port["containerPort"] for port in container["ports"]] == [9100]
    command = json.loads(dockerfile["CMD"][-1])
    assert command == ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    assert "command" not in container, "the pod must run the image's CMD"
    assert any(e == "GUNICORN_BIND=0.0.0.0:8000" for e in dockerfile["ENV"])
    assert env["GUNICORN_BIND"] == "127.0.0.1:8000"
    assert any(e == "METRICS_PORT=9100" for e in dockerfile["ENV"]) and env["METRICS_PORT"] == "9100"


def test_build_context_admits_what_the_app_needs(k8s):
    """.dockerignore is an allow-list; everything it admits must exist, and the app needs it."""
    repo = k8s.root.parent
    lines = [
        line.strip()
        for line in (repo / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "start from nothing, then admit"
    admitted = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert admitted == {"requirements.txt", "wsgi.py", "gunicorn.conf.py", "aura"}
    for path in admitted:
        assert (repo / path).exists(), path
    assert (repo / "aura" / "migrations").is_dir(), "the migration initContainer needs them"


def test_base_image_matches_the_project_python(dockerfile, k8s):
    pyproject = (k8s.root.parent / "pyproject.toml").read_text()
    minimum = re.search(r'requires-python\s*=\s*">=(\d+\.\d+)"', pyproject).group(1)
    base = next(arg for arg in dockerfile["ARG"] if arg.startswith("PYTHON_IMAGE="))
    assert f"python:{minimum}-" in base
