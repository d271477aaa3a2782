"""A Redis Sentinel deployment on loopback for tests: one master, its replicas and three
Sentinels, each a real redis-server process on a free port.

Sentinels decide fast here (`down-after-milliseconds` 1000, `failover-timeout` 5000), so a
SIGKILLed master is replaced within a few seconds. Nothing is persisted (no AOF, no RDB):
what survives a master's death is what its replicas had received.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import redis as redis_lib

from producer.cli.processes import find_redis_server
from tests.support.processes import Process, free_port, spawn, stop, wait_tcp

MASTER_NAME = "kirim"


class SentinelCluster:
    """1 master + `replicas` replicas + `sentinels` Sentinels (quorum 2), on 127.0.0.1."""

    def __init__(self, workdir: Path, replicas: int = 2, sentinels: int = 3,
                 down_after_ms: int = 1000, failover_timeout_ms: int = 5000) -> None:
        self.workdir = workdir
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.data_ports = [free_port() for _ in range(1 + replicas)]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.procs: dict[int, Process] = {}  # port -> its redis-server process

    @property
    def sentinels_setting(self) -> str:
        """KIRIM_REDIS_SENTINELS for this deployment."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def env(self, db: int = 0) -> dict[str, str]:
        """KIRIM_* variables of a kirim process that reaches Redis through these Sentinels.
        KIRIM_REDIS_URL names a port nothing listens on: only the db may be taken from it."""
        return {"KIRIM_REDIS_SENTINELS": self.sentinels_setting,
                "KIRIM_REDIS_MASTER_NAME": MASTER_NAME,
                "KIRIM_REDIS_URL": f"redis://127.0.0.1:1/{db}"}

    def start(self) -> SentinelCluster:
        """Start the master, the replicas (synced), then the Sentinels (agreeing on all)."""
        master = self.data_ports[0]
        for port in self.data_ports:
            args = self._server_args(port)
            if port != master:
                args += ["--replicaof", "127.0.0.1", str(master)]
            self._spawn(port, args)
        for port in self.sentinel_ports:
            conf = self.workdir / f"sentinel-{port}.conf"
            conf.write_text("\n".join([
                f"port {port}", "bind 127.0.0.1", "daemonize no", f"dir {self.workdir}",
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2",
                f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}",
                f"sentinel failover-timeout {MASTER_NAME} {self.failover_timeout_ms}",
                f"sentinel parallel-syncs {MASTER_NAME} 2", ""]))
            self._spawn(port, [find_redis_server(), str(conf), "--sentinel",
                               "--loglevel", "notice"])
        self.wait_replicas(len(self.data_ports) - 1)
        self._wait_sentinels_know_all()
        return self

    def _server_args(self, port: int) -> list[str]:
        data = self.workdir / f"redis-{port}"
        data.mkdir(exist_ok=True)
        return [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--dir",
                str(data), "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
                "--loglevel", "notice"]

    def _spawn(self, port: int, args: list[str]) -> None:
        self.procs[port] = spawn(args, log=self.workdir / f"{port}.log")
        wait_tcp(port, f"redis-server on {port}", hint=f"; see {self.workdir}/{port}.log")

    def client(self, port: int) -> redis_lib.Redis:
        """A direct client of one server or Sentinel (short timeouts)."""
        return redis_lib.Redis(port=port, socket_timeout=2, socket_connect_timeout=2,
                               decode_responses=True)

    def master_port(self) -> int | None:
        """The master's port as a majority of the Sentinels name it now (None: no agreement)."""
        votes: dict[int, int] = {}
        for port in self.sentinel_ports:
            try:
                found = self.client(port).sentinel_get_master_addr_by_name(MASTER_NAME)
            except redis_lib.RedisError:
                continue
            if found:
                votes[int(found[1])] = votes.get(int(found[1]), 0) + 1
        best = max(votes.items(), key=lambda kv: kv[1], default=None)
        return best[0] if best and best[1] >= 2 else None

    def wait_replicas(self, n: int, timeout_s: float = 20.0) -> None:
        """Wait until the current master has `n` replicas online and in sync."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            port = self.master_port() or self.data_ports[0]
            try:
                info = self.client(port).info("replication")
            except redis_lib.RedisError:
                info = {}
            online = [v for k, v in info.items() if k.startswith("slave")
                      and isinstance(v, dict) and v.get("state") == "online"]
            if info.get("role") == "master" and len(online) >= n:
                return
            time.sleep(0.1)
        raise AssertionError(f"the master did not get {n} replicas within {timeout_s}s;"
                             f" logs in {self.workdir}")

    def _wait_sentinels_know_all(self, timeout_s: float = 20.0) -> None:
        want = len(self.data_ports) - 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                ok = all(
                    len(self.client(p).sentinel_slaves(MASTER_NAME)) >= want
                    and int(self.client(p).sentinel_master(MASTER_NAME)["num-other-sentinels"])
                    >= len(self.sentinel_ports) - 1
                    for p in self.sentinel_ports)
            except redis_lib.RedisError:
                ok = False
            if ok and self.master_port() == self.data_ports[0]:
                return
            time.sleep(0.2)
        raise AssertionError(f"the Sentinels did not find each other and every replica"
                             f" within {timeout_s}s; logs in {self.workdir}")

    def kill_master(self) -> int:
        """SIGKILL the current master (no goodbye, nothing saved); returns its port."""
        port = self.master_port()
        assert port is not None, "no master agreed on by the Sentinels"
        proc = self.procs.pop(port)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        return port

    def wait_new_master(self, old_port: int, timeout_s: float = 30.0) -> int:
        """Wait until the Sentinels name a master other than `old_port` that answers as one."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            port = self.master_port()
            if port not in (None, old_port):
                try:
                    if self.client(port).info("replication").get("role") == "master":
                        return port
                except redis_lib.RedisError:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"no new master within {timeout_s}s after {old_port} died;"
                             f" logs in {self.workdir}")

    def stop(self) -> None:
        """Stop every process still running (Sentinels first)."""
        order = [p for p in self.sentinel_ports if p in self.procs]
        order += [p for p in self.data_ports if p in self.procs]
        stop([self.procs[p] for p in order], timeout_s=5)
        self.procs.clear()
