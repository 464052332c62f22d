#!/usr/bin/env bash
# The integration tests talk to a real Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432).
# Start them if this machine has them installed but stopped; say so plainly if it has neither.
set -u
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; }
pg_up() { pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }

if ! redis_up && command -v redis-server >/dev/null; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/rrr-tests.log
fi
if ! pg_up && command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
for _ in $(seq 1 30); do redis_up && pg_up && break; sleep 1; done
redis_up || echo "ensure-services: Redis is not reachable on 127.0.0.1:6379" >&2
pg_up || echo "ensure-services: PostgreSQL is not reachable on 127.0.0.1:5432" >&2
exit 0
