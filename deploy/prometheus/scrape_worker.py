"""Start a real worker against a throwaway Redis and print one scrape of its /metrics.

`python deploy/prometheus/scrape_worker.py | promtool check metrics` (run by `make lint`).
The worker is the one the deployments run (celery -A worker.app worker -P threads), on the
maintenance queue, with placeholder credentials it never uses: nothing is published to it.
Redis and the worker get free ports and a temporary directory, and both are stopped after.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TIMEOUT_S = 40.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    redis_server = subprocess.run([str(ROOT / "deploy/local/ensure-redis.sh")], check=True,
                                  capture_output=True, text=True).stdout.strip()
    redis_port, metrics_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="kirim-scrape-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KIRIM_")}
        env.update(
            KIRIM_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            KIRIM_HASH_KEY=secrets.token_urlsafe(32),
            KIRIM_NUSASMS_URL="http://127.0.0.1:9", KIRIM_NUSASMS_USER="scrape",
            KIRIM_NUSASMS_PASSWORD="scrape", KIRIM_METRICS_PORT=str(metrics_port),
            KIRIM_HEARTBEAT_FILE=f"{tmp}/alive", KIRIM_LOG_FORMAT="json")
        log = open(f"{tmp}/worker.log", "wb")  # noqa: SIM115 - closed with the directory
        redis = subprocess.Popen([redis_server, "--port", str(redis_port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--dir", tmp],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # cwd is the temporary directory: the repository's .env is not read.
        worker = subprocess.Popen(
            [str(BIN / "celery"), "-A", "worker.app", "worker", "-P", "threads", "-c", "2",
             "-Q", "maintenance", "-n", "scrape@%h", "--without-mingle", "--without-gossip"],
            cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while time.monotonic() < deadline:
                if worker.poll() is not None:
                    break
                try:
                    url = f"http://127.0.0.1:{metrics_port}/metrics"
                    with urllib.request.urlopen(url, timeout=2) as reply:
                        text = reply.read().decode()
                    if "kirim_backlog_redis_up 1.0" in text:
                        sys.stdout.write(text)
                        return 0
                except OSError:
                    pass
                time.sleep(0.25)
            print(f"no scrape of the worker's /metrics within {TIMEOUT_S:.0f} s; its log:\n"
                  + Path(f"{tmp}/worker.log").read_text(errors="replace")[-3000:],
                  file=sys.stderr)
            return 1
        finally:
            stop(worker)
            stop(redis)
            log.close()


if __name__ == "__main__":
    sys.exit(main())
