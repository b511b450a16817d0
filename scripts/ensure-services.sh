#!/usr/bin/env bash
# Make sure what the tests need is installed and running: Redis, promtool/Prometheus,
# Alertmanager/amtool, nginx, Chromium and (when asked with --postgres) PostgreSQL, (with --ha)
# Sentinel, haproxy and PostgreSQL's server programs. Installs Debian packages only where missing.
# --install-only: install what is missing, start nothing.
set -euo pipefail

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v promtool >/dev/null || need_apt+=(prometheus)
{ command -v amtool >/dev/null && command -v prometheus-alertmanager >/dev/null; } \
  || need_apt+=(prometheus-alertmanager)
# nginx in front of Gunicorn (tests/resilience/test_slow_clients_nginx.py); /usr/sbin is not on
# every user's PATH.
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need_apt+=(nginx-light)
# A real headless browser for the docs page (tests/e2e/test_docs_browser.py).
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
if [[ "${1:-}" == "--postgres" ]] && ! command -v pg_ctlcluster >/dev/null; then
  need_apt+=(postgresql)
fi
# --ha (make test-ha): Sentinel, haproxy and the PostgreSQL server programs (initdb,
# pg_basebackup) for the failover tests, which start their own servers.
if [[ "${1:-}" == "--ha" ]]; then
  command -v redis-sentinel >/dev/null || need_apt+=(redis-sentinel)
  command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || need_apt+=(haproxy)
  compgen -G "/usr/lib/postgresql/*/bin/pg_basebackup" >/dev/null || need_apt+=(postgresql)
fi
if ((${#need_apt[@]})); then
  echo "installing: ${need_apt[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  # The packages' own services may not start in a container; we start what we need below.
fi
[[ "${1:-}" == "--install-only" ]] && exit 0   # make demo starts (and stops) its own Redis

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

if [[ "${1:-}" == "--postgres" ]]; then
  if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    for _ in $(seq 100); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.1; done
  fi
  # Trust auth on loopback is how this machine's cluster is set up; a test database must exist.
  psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null
fi
