"""Connecting to Ray: a local instance, a running cluster (``auto``) or an address; one-line errors."""

from __future__ import annotations

import logging
import os
import socket
import time

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


DIED_GRACE_S = 1.0  # a ping failing with ActorDiedError this long means "for good", not "restarting"


def wait_for_restart(actor, what: str, wait_s: float, max_restarts: int, err: BaseException):
    """Ping ``actor`` (which died with ``err``) until Ray has restarted it; returns the ping's answer. A call to
    a restarting actor waits for it, one to a dead actor fails at once: ActorDiedError for DIED_GRACE_S, or no
    answer within ``wait_s``, raises DistributedError naming ``what``."""
    ray = import_ray()
    deadline = time.monotonic() + wait_s
    died_since = None
    last: BaseException = err
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DistributedError(f"{what} did not come back within {wait_s:g}s after dying ({first_line(last)})")
        try:
            return ray.get(actor.ping.remote(), timeout=min(left, 10.0))
        except ray.exceptions.GetTimeoutError as e:
            last = e
        except ray.exceptions.ActorDiedError as e:  # restarts used up (or not restartable): for good
            last = e
            died_since = died_since or time.monotonic()
            if time.monotonic() - died_since > DIED_GRACE_S:
                raise DistributedError(f"{what} died and Ray cannot restart it (distributed.max_restarts = "
                                       f"{max_restarts} over the run): {first_line(e)}") from None
            time.sleep(0.1)
        except ray.exceptions.RayActorError as e:  # unavailable: restarting
            last = e
            time.sleep(0.1)


def first_line(err: BaseException) -> str:
    """The first line of an error's message (Ray's are long)."""
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


def stop_actors(actors: list, method: str, timeout_s: float, wait_s: float = 10.0) -> None:
    """Call ``method`` (a clean shutdown) on every actor, then kill them for good and wait (at most ``wait_s``)
    until each is gone: ray.kill goes through the GCS while a task goes straight to the actor, so an actor can
    still answer for a moment after ray.kill returns. A dead or stuck actor is killed all the same. The actors
    need a ``ping`` method."""
    ray = import_ray()
    if not actors or not ray.is_initialized():
        return
    try:
        ray.get([getattr(a, method).remote() for a in actors], timeout=timeout_s)
    except Exception:  # noqa: BLE001 - an actor that already died, or is stuck
        pass
    for a in actors:
        try:
            ray.kill(a, no_restart=True)
        except Exception:  # noqa: BLE001
            pass
    deadline = time.monotonic() + wait_s
    alive = list(actors)
    while alive and time.monotonic() < deadline:
        still = []
        for a in alive:
            try:
                ray.get(a.ping.remote(), timeout=max(0.1, deadline - time.monotonic()))
                still.append(a)
            except Exception:  # noqa: BLE001 - ActorDiedError: gone (a timeout: give up on it)
                pass
        alive = still
        if alive:
            time.sleep(0.05)
