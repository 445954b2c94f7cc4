"""A real Ray cluster of two nodes on 127.0.0.1 (ray.cluster_utils.Cluster), and a subscriber that records every
result the fleet forwards, for tests/test_fleet.py and benchmarks/fleet_overhead.py."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict

import zmq

# Ray replaces a loopback address with this machine's outward address unless clusters "beyond this machine" are
# off; with it off every node, the GCS and the raylets bind 127.0.0.1 only. Set before Ray is imported anywhere,
# and inherited by every process Ray starts.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
NODE = {"node_ip_address": "127.0.0.1", "object_store_memory": 100 * 2**20}


def start_cluster(nodes: int = 2, cpus_per_node: int = 4):
    """-> (the Cluster, [its worker nodes]); this process is connected to it (ray.init)."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True,
                      head_node_args={**NODE, "num_cpus": cpus_per_node, "include_dashboard": False})
    workers = [cluster.add_node(**NODE, num_cpus=cpus_per_node) for _ in range(nodes - 1)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="WARNING")
    return cluster, workers


def stop_cluster(cluster) -> None:
    import ray

    ray.shutdown()
    cluster.shutdown()


class Recorder:
    """Subscribes to every result on `endpoint` from its own thread; per camera, [(seq, support_id, monotonic)]."""

    def __init__(self, endpoint: str, context: zmq.Context | None = None):
        self.endpoint = endpoint
        self._context = context or zmq.Context.instance()
        self.results: dict[str, list[tuple[int, str, float]]] = defaultdict(list)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Recorder":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        sock = self._context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 100_000)
        sock.setsockopt(zmq.SUBSCRIBE, b"persense/")
        sock.connect(self.endpoint)
        try:
            while not self._stop.is_set():
                if not sock.poll(100):
                    continue
                topic, header, *_ = sock.recv_multipart()
                if not topic.endswith(b"/result"):
                    continue
                message = json.loads(header)
                with self._lock:
                    self.results[message["camera"]].append((message["seq"], message["support_id"],
                                                            time.monotonic()))
        finally:
            sock.close(0)

    def of(self, camera: str) -> list[tuple[int, str, float]]:
        with self._lock:
            return list(self.results.get(camera, ()))

    def count(self, camera: str, since: float = 0.0) -> int:
        return sum(1 for _, _, at in self.of(camera) if at >= since)

    def cameras(self) -> set[str]:
        with self._lock:
            return {camera for camera, results in self.results.items() if results}


def gaps(seqs: list[int]) -> list[tuple[int, int]]:
    """Pairs of consecutive seqs that are not n, n + 1."""
    return [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1]
