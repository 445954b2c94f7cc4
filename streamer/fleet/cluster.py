"""Joining a Ray cluster, or starting one on this machine, checked so that a wrong address costs one line."""

from __future__ import annotations

import logging
import re
import socket

from streamer.errors import UserError, first_line
from streamer.fleet.config import LocalCluster

log = logging.getLogger(__name__)

_ADDRESS = re.compile(r"^(?:ray://)?(?P<host>\[[^\]]+\]|[^:/\[\]]+):(?P<port>\d{1,5})$")


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """UserError with one line unless something answers a TCP connection at HOST:PORT (or ray://HOST:PORT);
    Ray itself would keep retrying a dead address for a long time."""
    match = _ADDRESS.match(address.strip())
    if match is None:
        raise UserError(f"cluster address {address!r} must be HOST:PORT (or ray://HOST:PORT, or auto)")
    host, port = match["host"].strip("[]"), int(match["port"])
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise UserError(f"no Ray cluster answers at {address}: {exc.strerror or first_line(exc)}") from None


def connect(address: str | None, local: LocalCluster) -> bool:
    """Connect this process to Ray -> whether it started (and so must shut down) Ray itself.

    address: HOST:PORT of a running cluster's head, `auto` (the one `ray start` made on this machine), or None
    to start a local Ray with `local`'s resources. A process already connected (a test's cluster) stays so.
    """
    import ray

    if ray.is_initialized():
        return False
    if address:
        if address != "auto":
            check_reachable(address)
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UserError(f"cannot join the Ray cluster at {address}: {first_line(exc)}") from None
        return True
    ray.init(num_cpus=local.num_cpus, num_gpus=local.num_gpus, object_store_memory=local.object_store_mb * 2**20,
             include_dashboard=False, logging_level=logging.WARNING)
    log.info("started a local Ray: %s", ray.cluster_resources())
    return True
