#!/usr/bin/env bash
# `make demo`: its own Redis, Gunicorn with 4 recycling workers, a local Prometheus scraping its
# metrics listener (METRICS_PORT, as Prometheus scrapes each pod) with the project's rules in their demo override (dashboards/demo-rules.yml: the same alerts
# on short windows and `for:`), Alertmanager with the project's routing and a local receiver
# (scripts/alert_sink.py) in place of the pager and ticket system, and the load generator.
# Midway the demo stops its Redis for DEMO_OUTAGE_SECONDS: token checks fail closed (503), the
# availability SLO burns, and its fast-burn page fires, then resolves when Redis is back.
# Then the saturation phase: Redis turns slow (DEBUG SLEEP in a loop: every call waits up to
# 0.2 s) while a second load generator adds 8 clients, so every worker waits on Redis and
# connections queue: it lasts until AuraWorkersSaturated fires (at most DEMO_SATURATION_MAX
# seconds), then Redis is fast again and the alert resolves. At the end the demo prints which
# alerts fired, when, and when they resolved, with the notifications the sink received
# (scripts/alert_timeline.py).
# Ctrl-C stops the load generators at once, then everything this script started (by pid), and
# exits 0.
#
# Settings: DEMO_PORT (8000), DEMO_METRICS_PORT (9100), DEMO_PROMETHEUS_PORT (9090),
# DEMO_ALERTMANAGER_PORT (9093), DEMO_ALERT_SINK_PORT (9094), DEMO_REDIS_PORT (6390), DEMO_DIR
# (.demo), DEMO_SECONDS (600), DEMO_REQUESTS (300000), DEMO_OUTAGE_AFTER (30, seconds into the
# load), DEMO_OUTAGE_SECONDS (50; 0: no outage), DEMO_SATURATION_MAX (420; 0: no saturation).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DEMO=${DEMO_DIR:-.demo}
PORT=${DEMO_PORT:-8000}
METRICS_PORT=${DEMO_METRICS_PORT:-9100}
PROM_PORT=${DEMO_PROMETHEUS_PORT:-9090}
REDIS_PORT=${DEMO_REDIS_PORT:-6390}
AM_PORT=${DEMO_ALERTMANAGER_PORT:-9093}
SINK_PORT=${DEMO_ALERT_SINK_PORT:-9094}
OUTAGE_AFTER=${DEMO_OUTAGE_AFTER:-30}
OUTAGE_SECONDS=${DEMO_OUTAGE_SECONDS:-50}
SATURATION_MAX=${DEMO_SATURATION_MAX:-420}
SECONDS_OF_LOAD=${DEMO_SECONDS:-600}
mkdir -p "$DEMO"
DEMO=$(cd "$DEMO" && pwd)
pids=()

cleanup() {
  trap - EXIT INT TERM
  [[ -n "${helper:-}" ]] && kill -TERM "$helper" 2>/dev/null
  if ((${#pids[@]})); then
    echo "stopping what the demo started (pids ${pids[*]})"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  fi
  rm -f "$DEMO/pids"
}
# Ctrl-C is how the demo is meant to end: clean up and report success.
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

# The services run in sessions of their own (setsid): Ctrl-C reaches only this script and the
# load generator, which stop first; the services are then stopped gracefully by pid (a Gunicorn
# worker hit by the terminal's SIGINT would abort the request it is serving).
started() {  # remember a background process, for cleanup and for whoever watches $DEMO/pids
  pids+=("$1")
  echo "$1" >> "$DEMO/pids"
}
: > "$DEMO/pids"

if ! command -v redis-server >/dev/null || ! command -v prometheus >/dev/null \
    || ! command -v prometheus-alertmanager >/dev/null; then
  scripts/ensure-services.sh --install-only   # Debian: redis-server, prometheus, prometheus-alertmanager
fi

# Always its own Redis, never a shared one: the demo stops it midway to show an outage.
if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "something already answers on 127.0.0.1:$REDIS_PORT; the demo needs its own Redis there" \
       "(it stops it midway): set DEMO_REDIS_PORT" >&2
  exit 1
fi
start_redis() {
  # DEBUG (from loopback only) lets the saturation phase make it slow.
  setsid redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --enable-debug-command local >> "$DEMO/redis.log" 2>&1 &
  redis_pid=$!
  started "$redis_pid"
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
}
echo "starting redis-server on 127.0.0.1:$REDIS_PORT (stopped with the demo)"
start_redis

export REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export AURA_INSTANCE_PATH="$DEMO/instance" DATABASE_URL="sqlite:///$DEMO/demo.db"
export GUNICORN_BIND="127.0.0.1:$PORT" METRICS_PORT WEB_CONCURRENCY=4 GUNICORN_MAX_REQUESTS=300 GUNICORN_MAX_REQUESTS_JITTER=100
export PROMETHEUS_MULTIPROC_DIR="$DEMO/metrics" GUNICORN_ACCESS_LOG="" GUNICORN_CONTROL_SOCKET="$DEMO/gunicorn.ctl"
# REDIS_SOCKET_TIMEOUT: during the outage, requests fail fast (503) rather than hang.
export ACCESS_TOKEN_EXPIRES=5 RATE_LIMIT_LOGIN_ACCOUNT="20 per hour" RATE_LIMIT_LOGIN="100000 per hour" REDIS_SOCKET_TIMEOUT=1
# loadgen stamps X-Request-Start as a proxy would: trust one proxy so Queue Time has data.
export TRUSTED_PROXY_COUNT=1
export RATE_LIMIT_DEFAULT="100000 per hour" RATE_LIMIT_WORKFLOWS="100000 per hour" RATE_LIMIT_REGISTER="100000 per hour"
# Cheaper password hashes, and room for the load generator's 6 threads to hash at once: with the
# production cost and budget (t=3, 64 MiB, 2 in flight) most of its logins get an instant 429 -
# too few sessions reach the token checks for the Redis outage to show as 503s - and with the
# budget alone raised, hashing fills both cores of a small machine, so the workers read
# saturated all along and the saturation phase could not resolve.
export PASSWORD_HASH_TIME_COST=1 PASSWORD_HASH_MEMORY_COST=16384 PASSWORD_HASH_MAX_CONCURRENT=8
$BIN/flask --app wsgi db upgrade
setsid $BIN/gunicorn -c gunicorn.conf.py wsgi:app > "$DEMO/gunicorn.log" 2>&1 &
started $!

# Alertmanager: the project's configuration (routes, grouping, inhibition) with its two webhook
# receivers pointed at the local sink, and shorter waits so notifications follow in seconds.
sed -e "s#http://alert-relay.monitoring.svc:8080#http://127.0.0.1:$SINK_PORT#" \
    -e "s#group_wait: .*#group_wait: 5s#" -e "s#group_interval: .*#group_interval: 10s#" \
    k8s/monitoring/alertmanager/alertmanager.yml > "$DEMO/alertmanager.yml"
setsid $BIN/python scripts/alert_sink.py --port "$SINK_PORT" --log "$DEMO/notifications.log" \
  > /dev/null 2>&1 &
started $!
setsid prometheus-alertmanager --config.file="$DEMO/alertmanager.yml" --storage.path="$DEMO/alertmanager-data" \
  --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address= > "$DEMO/alertmanager.log" 2>&1 &
started $!

# The labels Kubernetes discovery would add: the rules and dashboards select by them.
cat > "$DEMO/prometheus.yml" <<YAML
global: {scrape_interval: 5s, evaluation_interval: 5s}
rule_files: ["$PWD/dashboards/demo-rules.yml"]
alerting:
  alertmanagers: [{static_configs: [{targets: ["127.0.0.1:$AM_PORT"]}]}]
scrape_configs:
  - job_name: aura
    # The master's metrics listener, as in the pod (prometheus.io/port: 9100): a scrape never
    # waits behind busy workers, which the saturation phase makes them.
    static_configs: [{targets: ["127.0.0.1:$METRICS_PORT"], labels: {namespace: demo, pod: demo-0}}]
YAML
setsid prometheus --config.file="$DEMO/prometheus.yml" --storage.tsdb.path="$DEMO/prometheus-data" \
  --enable-feature=exemplar-storage --web.listen-address="127.0.0.1:$PROM_PORT" > "$DEMO/prometheus.log" 2>&1 &
started $!

for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
INACTIVE="inactive-$$@loadgen.example"
curl -fs -XPOST "http://127.0.0.1:$PORT/api/v1/auth/register" -H 'Content-Type: application/json' \
  -d "{\"email\":\"$INACTIVE\",\"password\":\"loadgen-password-1\"}" >/dev/null || true
$BIN/flask --app wsgi user deactivate "$INACTIVE" >/dev/null

if ((OUTAGE_SECONDS > 0)); then
  outage="At ${OUTAGE_AFTER}s the demo stops its Redis for ${OUTAGE_SECONDS}s: authenticated requests
answer 503 and AuraRedisConnectionErrors (critical) pages within about 30s - once: the SLO burn
alerts (AuraAvailabilitySLOFastBurn) and the error-rate alert the same 503s trip are inhibited. It resolves once Redis is back."
else
  outage="DEMO_OUTAGE_SECONDS=0: no Redis outage, so no SLO alert will fire."
fi
if ((SATURATION_MAX > 0)); then
  saturation="After the outage, Redis turns slow and 8 more clients arrive: every worker waits on Redis,
connections queue, and AuraWorkersSaturated (warning) fires once the 5-minute busy ratio passes 0.9
(about 5 minutes); then Redis is fast again and it resolves. The timeline is printed at the end."
else
  saturation="DEMO_SATURATION_MAX=0: no saturation phase."
fi
cat <<TXT

Aura demo running:
  API           http://127.0.0.1:$PORT/api/v1/openapi.json  (browse it at /api/v1/docs)
  /metrics      http://127.0.0.1:$METRICS_PORT/metrics  (the master's listener, what Prometheus scrapes)
  Prometheus    http://127.0.0.1:$PROM_PORT/alerts  (pending and firing; Graph: any query in docs/metrics.md)
  Alertmanager  http://127.0.0.1:$AM_PORT/#/alerts  (grouped by namespace and alert, inhibited ones under "Inhibited")
  Notifications $DEMO/notifications.log  (what the pager and ticket receivers got)
  Logs          $DEMO/gunicorn.log, $DEMO/prometheus.log, $DEMO/alertmanager.log

ALERTS FIRE IN THIS DEMO: it loads dashboards/demo-rules.yml, the project's rules with every
\`for:\` at 10s and the SLO burn-rate windows shortened (1h->2m, 5m->20s, ...; production uses
alert-rules.yml and slo-rules.yml, where nothing fires this fast). Within the first minute the
spec's HighAuthenticationFailureRate fires (the bad logins), RateLimitHitsHigh too when the
login burst is rejected more than 10 times a second.
$outage
$saturation
Driving load for ${SECONDS_OF_LOAD}s (less if the phases end sooner); Ctrl-C stops everything.

TXT
# In the background + wait, so that a signal reaches the trap at once (bash runs traps only
# between commands, and `wait` is interrupted by a trapped signal; a foreground child is not).
demo_start=$(date +%s)
$BIN/python scripts/loadgen.py --url "http://127.0.0.1:$PORT" --seconds "$SECONDS_OF_LOAD" \
  --requests "${DEMO_REQUESTS:-300000}" --burst 5000 --burst-threads 2 --inactive-email "$INACTIVE" --token-ttl 5 &
loadgen=$!
echo "$loadgen" >> "$DEMO/pids"
pids=("$loadgen" "${pids[@]}")  # stopped first: no request is sent to a stopping server

# The outage: stop Redis after OUTAGE_AFTER seconds, start it again OUTAGE_SECONDS later. Each
# sleep runs in the background and is waited for, so Ctrl-C still reaches the trap at once.
pause() {  # pause SECONDS: false as soon as the load generator has finished
  local i
  for ((i = 0; i < $1; i++)); do
    kill -0 "$loadgen" 2>/dev/null || return 1
    sleep 1 & wait $!
  done
}
helper=""  # the alert waiter or the timeline report, stopped by cleanup if Ctrl-C lands meanwhile
timeline() {  # wait ALERT STATE TIMEOUT: true once the alert is in that state
  $BIN/python scripts/alert_timeline.py wait --prometheus "http://127.0.0.1:$PROM_PORT" \
    --alert "$1" --state "$2" --timeout "$3" &
  helper=$!
  local code=0
  wait "$helper" || code=$?
  helper=""
  return "$code"
}
if ((OUTAGE_SECONDS > 0)) && pause "$OUTAGE_AFTER"; then
  echo; echo ">>> $(date +%T) stopping Redis for ${OUTAGE_SECONDS}s: watch http://127.0.0.1:$PROM_PORT/alerts"
  kill -TERM "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  pause "$OUTAGE_SECONDS" || true
  echo; echo ">>> $(date +%T) Redis back: the SLO alerts resolve within a few minutes"
  start_redis
fi
# Saturation: Redis answers slowly (each DEBUG SLEEP blocks it 0.2 s; calls queue behind it) and
# 8 more clients arrive, until AuraWorkersSaturated fires or SATURATION_MAX seconds pass.
if ((SATURATION_MAX > 0)) && pause 20; then
  echo; echo ">>> $(date +%T) Redis slow and 8 more clients until AuraWorkersSaturated fires (at most ${SATURATION_MAX}s)"
  (while :; do redis-cli -h 127.0.0.1 -p "$REDIS_PORT" DEBUG SLEEP 0.2 >/dev/null 2>&1 || sleep 0.2; done) &
  slow_redis=$!
  pids=("$slow_redis" "${pids[@]}")
  $BIN/python scripts/loadgen.py --url "http://127.0.0.1:$PORT" --seconds "$SATURATION_MAX" --requests 1000000 \
    --concurrency 8 --burst 0 --quiet > "$DEMO/saturation-load.log" 2>&1 &
  extra_load=$!
  pids=("$extra_load" "${pids[@]}")
  if timeline AuraWorkersSaturated firing "$SATURATION_MAX"; then
    echo; echo ">>> $(date +%T) AuraWorkersSaturated is firing: Redis fast again, the extra clients leave"
  else
    echo; echo ">>> $(date +%T) AuraWorkersSaturated did not fire within ${SATURATION_MAX}s; ending the phase"
  fi
  kill -TERM "$extra_load" "$slow_redis" 2>/dev/null || true
  wait "$extra_load" "$slow_redis" 2>/dev/null || true
  pids=("${pids[@]:2}")
  if timeline AuraWorkersSaturated inactive 240; then
    echo; echo ">>> $(date +%T) AuraWorkersSaturated resolved"
  fi
fi
# Time for the last resolved notifications to reach the sink (group_interval 10s).
sleep 15 & wait $!
$BIN/python scripts/alert_timeline.py report --prometheus "http://127.0.0.1:$PROM_PORT" --since "$demo_start" \
  --notifications "$DEMO/notifications.log" | tee "$DEMO/timeline.txt" &
helper=$!
wait "$helper" || true
helper=""
echo "Demo phases done (timeline in $DEMO/timeline.txt); the load generator runs to its end."
wait "$loadgen" || true
pids=("${pids[@]:1}")
echo "Load finished; Aura, Prometheus and Alertmanager keep running until Ctrl-C."
wait "${pids[@]}"
