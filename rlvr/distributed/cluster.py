"""Connecting to Ray: a local instance, a running cluster (``auto``) or an address; one-line errors."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("rlvr")

# Environment of every worker process: no tokenizer thread pools fighting the torch threads, no hub access.
WORKER_ENV = {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
              "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
CONNECT_TIMEOUT_S = 5.0


class DistributedError(RuntimeError):
    """Ray is missing, the cluster cannot be reached, or a worker failed beyond its restarts."""


def import_ray():
    try:
        import ray
    except ImportError as err:
        raise DistributedError("distributed.backend=ray needs Ray: pip install 'rlvr[ray]'") from err
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of 'host:port' or 'ray://host:port'; None for 'auto' and other forms Ray resolves itself."""
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def connect(address: str = "", num_cpus: int = 0) -> None:
    """ray.init for ``distributed.address`` ("" = start a local instance; a no-op when already connected).

    An address that does not answer raises DistributedError within CONNECT_TIMEOUT_S, naming the key (ray.init
    itself would retry for minutes)."""
    ray = import_ray()
    if ray.is_initialized():
        return
    kwargs = dict(include_dashboard=False, log_to_driver=True, runtime_env={"env_vars": WORKER_ENV})
    hint = ("start one with `ray start --head` (docs/distributed.md), or leave distributed.address empty to start "
            "a local instance")
    if not address:
        ray.init(num_cpus=num_cpus or None, **kwargs)
        return
    target = _host_port(address)
    if target is not None:
        try:
            socket.create_connection(target, timeout=CONNECT_TIMEOUT_S).close()
        except OSError as err:
            raise DistributedError(f"distributed.address={address}: no Ray cluster answers there ({err}); "
                                   f"{hint}") from None
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DistributedError(f"distributed.address={address}: cannot join the Ray cluster ({first}); "
                               f"{hint}") from None


def shutdown() -> None:
    ray = import_ray()
    if ray.is_initialized():
        ray.shutdown()


def threads_for(cpus: float) -> int:
    """torch threads of a worker that asked Ray for ``cpus`` CPUs (at least 1)."""
    return max(1, int(round(cpus)))
