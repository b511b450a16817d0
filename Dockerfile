# syntax=docker/dockerfile:1
# Aura's production image: Gunicorn serving the Flask app, as an unprivileged user, with a
# filesystem it never writes to (k8s mounts /tmp and the metrics directory as emptyDirs).
# Build:  docker build -t aura:dev .
# Not built in CI (no Docker engine there); tests/deploy checks that it agrees with the
# Kubernetes manifests (user, port, command).

# Pin the patch release (or a digest) in your registry mirror for reproducible builds.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- Build stage: install the pinned dependencies into a virtualenv ---------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Requirements alone first, so code changes reuse this (slow) layer. Every dependency ships a
# wheel for this platform (psycopg[binary] included), so no compiler is needed.
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt

# --- Runtime stage: the virtualenv and the code, nothing else ---------------------------------
FROM ${PYTHON_IMAGE}
# A fixed numeric UID/GID: Kubernetes' runAsNonRoot can only verify a numeric USER, and
# k8s/base/deployment.yaml runs as the same 10001.
RUN groupadd --system --gid 10001 aura \
 && useradd --system --uid 10001 --gid aura --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin aura
ENV PATH=/opt/venv/bin:$PATH
# The root filesystem is read-only at run time: no .pyc writes (they are compiled below).
ENV PYTHONDONTWRITEBYTECODE=1
# Logs reach the container runtime immediately, not when a buffer fills.
ENV PYTHONUNBUFFERED=1
# Listen on every interface inside the container (docker run); gunicorn.conf.py defaults to
# loopback, and so does the Kubernetes pod, where the nginx sidecar is the way in.
ENV GUNICORN_BIND=0.0.0.0:8000
# The master's metrics listener (/metrics, /healthz and /readyz without a worker): Prometheus
# scrapes it, the kubelet probes it.
ENV METRICS_PORT=9100
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
# .dockerignore admits only what the app needs: the aura package (migrations included),
# wsgi.py, gunicorn.conf.py. Owned by root: the app can read its code but not change it.
COPY . /app
RUN python -m compileall -q /app
USER 10001:10001
EXPOSE 8000 9100
# Exec form: Gunicorn is PID 1 and receives SIGTERM directly, so Kubernetes' graceful
# shutdown reaches it. PROMETHEUS_MULTIPROC_DIR is left to gunicorn.conf.py (or the pod).
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
