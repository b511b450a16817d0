#!/bin/sh
# Writes this pod's redis.conf and sentinel.conf into /conf (an emptyDir). A pod that restarts
# joins as a replica of the primary the Sentinels name now - never as a second primary; on a
# cold start (no Sentinel answers) redis-ha-0 is the primary.
set -eu
domain="redis-ha.aura.svc.cluster.local"
self="$(hostname).${domain}"
master=""
for i in 0 1 2; do
  answer="$(timeout 3 redis-cli -h "redis-ha-${i}.${domain}" -p 26379 \
    sentinel get-master-addr-by-name aura 2>/dev/null | head -n 1)" || true
  if [ -n "${answer}" ]; then
    master="${answer}"
    break
  fi
done
[ -n "${master}" ] || master="redis-ha-0.${domain}"
cp /etc/redis-ha/redis.conf /conf/redis.conf
echo "replica-announce-ip ${self}" >> /conf/redis.conf
[ "${master}" = "${self}" ] || echo "replicaof ${master} 6379" >> /conf/redis.conf
sed -e "s/MASTER/${master}/" -e "s/SELF/${self}/" /etc/redis-ha/sentinel.conf > /conf/sentinel.conf
echo "primary: ${master}; this pod: ${self}"
