"""A throwaway Redis Cluster on loopback: 3 masters and 3 replicas (tests and benchmarks).

Six `redis-server --cluster-enabled yes` processes joined by `redis-cli --cluster create
--cluster-replicas 1`; each node's port P and its cluster bus port P+10000 are both free.
A node timeout of 1000 ms lets a replica take over about 2 s after its master dies.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.cluster import RedisCluster

NODE_TIMEOUT_MS = 1000
MASTERS = 3
START_TIMEOUT_S = 30.0


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int) -> list[int]:
    """`count` ports P, each with P+10000 free too (the cluster bus)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 <= 65535 and port not in ports and _free(port + 10000):
            ports.append(port)
    return ports


class RedisClusterServer:
    def __init__(
        self, directory: str | None = None, masters: int = MASTERS, replicas: int = 1
    ) -> None:
        binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if binary is None or cli is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary, self.cli = binary, cli
        self.dir = Path(directory or tempfile.mkdtemp(prefix="marketdata-cluster-"))
        self.masters = masters
        self.replicas = replicas
        self.ports = cluster_ports(masters * (1 + replicas))
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> None:
        for port in self.ports:
            self.start_node(port)
        subprocess.run(
            [self.cli, "--cluster", "create",
             *(f"127.0.0.1:{port}" for port in self.ports),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, timeout=START_TIMEOUT_S,
        )  # fmt: skip
        self.wait_ok()

    def start_node(self, port: int) -> None:
        node_dir = self.dir / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(node_dir), "--cluster-enabled", "yes",
             "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
             # A replica takes over however long ago it last heard from its master.
             "--cluster-replica-validity-factor", "0"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def running(self) -> list[int]:
        return [p for p, proc in self.processes.items() if proc.poll() is None]

    def wait_ok(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until every running node says cluster_state:ok with every slot assigned, and
        every replica has its master's data (so that it can take over)."""
        deadline = time.monotonic() + timeout_s
        while not all(self._node_ok(port) for port in self.running()):
            if time.monotonic() > deadline:
                raise TimeoutError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    def _node_ok(self, port: int) -> bool:
        client = redis.Redis(port=port, socket_timeout=1)
        try:
            info = client.execute_command("CLUSTER", "INFO")
        except redis.RedisError:
            return False
        finally:
            client.close()
        fields = _fields(info)
        if fields.get("cluster_state") != "ok" or fields.get("cluster_slots_ok") != "16384":
            return False
        client = redis.Redis(port=port, socket_timeout=1)
        try:
            replication = client.info("replication")
        except redis.RedisError:
            return False
        finally:
            client.close()
        return replication.get("role") == "master" or (
            replication.get("master_link_status") == "up"
            and not replication.get("master_sync_in_progress")
        )

    def client(self) -> RedisCluster:
        port = self.running()[0]
        return RedisCluster(host="127.0.0.1", port=port)

    def master_for(self, key: str) -> int:
        """The port of the master that owns `key`'s slot now."""
        client = self.client()
        try:
            node = client.get_node_from_key(key)
            return int(node.port)
        finally:
            client.close()

    def kill(self, port: int) -> None:
        """kill -9 one node."""
        process = self.processes.pop(port)
        process.kill()
        process.wait(10)

    def flushall(self) -> None:
        for port in self.running():
            client = redis.Redis(port=port)
            try:
                client.flushall()
            except redis.ReadOnlyError:
                pass  # a replica: its master's FLUSHALL reaches it
            finally:
                client.close()

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            process.wait(10)
        self.processes.clear()


def _fields(info: bytes | str) -> dict[str, str]:
    text = info.decode() if isinstance(info, bytes) else str(info)
    return dict(line.split(":", 1) for line in text.split() if ":" in line)
