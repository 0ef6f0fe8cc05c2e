"""A private Redis Cluster for the tests of the Redis store on a cluster: three masters (no
replicas) on free loopback ports, sharing one temporary directory, nothing on disk but their
cluster configs and logs; killed and the directory removed afterwards.

The slots are split and the nodes introduced with redis-py (CLUSTER ADDSLOTS, SET-CONFIG-EPOCH,
MEET) rather than `redis-cli --cluster create`: only `redis-server` has to be installed, and the
wait for a working cluster polls instead of sleeping a second per step."""

from __future__ import annotations

import contextlib
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import redis
from redis.crc import key_slot

from tests.redis_server import RedisServer
from tests.serving import free_port

SLOTS = 16384
BUS_PORT_OFFSET = 10000  # a node's cluster bus listens on its port + 10000


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too (and exists: below 65536)."""
    for _ in range(100):
        port = free_port()
        if port + BUS_PORT_OFFSET < 65536 and _free(port + BUS_PORT_OFFSET):
            return port
    raise RuntimeError("no free pair of ports for a cluster node")


class LocalCluster:
    """Three redis-servers in cluster mode on 127.0.0.1, each master of a third of the slots."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.nodes: list[RedisServer] = []
        for _ in range(masters):
            port = cluster_port()
            options = (
                *("--cluster-enabled", "yes"),
                *("--cluster-config-file", str(directory / f"nodes-{port}.conf")),
            )
            self.nodes.append(RedisServer(directory, port=port, options=options))

    @property
    def url(self) -> str:
        """The store URL of this cluster (every node a startup node)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def _slots(self, index: int) -> range:
        share = SLOTS // len(self.nodes)
        return range(index * share, SLOTS if index == len(self.nodes) - 1 else (index + 1) * share)

    def node_of(self, key: str) -> RedisServer:
        """The node serving the key's slot (the slots stay where `start` put them)."""
        slot = key_slot(key.encode())
        return next(node for i, node in enumerate(self.nodes) if slot in self._slots(i))

    def start(self, timeout: float = 30) -> None:
        for node in self.nodes:
            node.start()
        clients = [redis.Redis(port=node.port) for node in self.nodes]
        try:
            for index, client in enumerate(clients):
                client.execute_command("CLUSTER ADDSLOTS", *self._slots(index))
                # Distinct epochs, as redis-cli gives them, so no node wins a slot by a tie-break.
                client.execute_command("CLUSTER SET-CONFIG-EPOCH", index + 1)
            for node in self.nodes[1:]:
                clients[0].execute_command("CLUSTER MEET", "127.0.0.1", node.port)
        finally:
            for client in clients:
                client.close()
        self.wait_until_ok(timeout)

    def wait_until_ok(self, timeout: float = 30) -> None:
        """Until every node knows every other and sees all slots served (`cluster_state:ok`):
        after `start`, or after a test stopped a node and started it again."""
        clients = [redis.Redis(port=node.port, socket_timeout=1) for node in self.nodes]
        deadline = time.monotonic() + timeout
        try:
            while True:
                infos = [client.execute_command("CLUSTER INFO") for client in clients]
                if all(_ok(info, len(clients)) for info in infos):
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the test cluster is not ok: {infos}")
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def _ok(info: bytes | str | dict[str, str], known: int) -> bool:
    text = info.decode() if isinstance(info, bytes) else info
    if isinstance(text, dict):  # a redis-py that parses the reply
        fields = {key: str(value) for key, value in text.items()}
    else:
        fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
    return fields.get("cluster_state") == "ok" and fields.get("cluster_known_nodes") == str(known)


@contextlib.contextmanager
def local_cluster(directory: Path) -> Iterator[LocalCluster]:
    """A started cluster, stopped and its directory removed at the end."""
    cluster = LocalCluster(directory)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
