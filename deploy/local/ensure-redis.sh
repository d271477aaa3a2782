#!/usr/bin/env bash
# Find redis-server; install it with apt where we are root; otherwise say how to get it.
set -euo pipefail
for candidate in "$(command -v redis-server || true)" /usr/bin/redis-server /usr/sbin/redis-server; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then echo "$candidate"; exit 0; fi
done
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "redis-server not found: installing Debian's redis-server with apt-get" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >&2
  command -v redis-server || { [ -x /usr/bin/redis-server ] && echo /usr/bin/redis-server; }
  exit 0
fi
cat >&2 <<'MSG'
redis-server (Redis 7) is needed and is not installed. Install it, then run the command again:
  Debian/Ubuntu:  sudo apt-get install -y redis-server
  macOS:          brew install redis
  or point KIRIM_REDIS_URL at a Redis you already run (make run then starts no local one).
MSG
exit 1
