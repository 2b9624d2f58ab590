"""Joining a Ray cluster, with one-line errors for what a user can get wrong.

A wrong address must not hang the trainer in Ray's connection retries (minutes of C++ log
lines): the address is resolved and probed with a plain TCP connection first. The actors need
one CPU each, so a cluster with fewer CPUs than ``num_actors`` is refused before any starts.
"""

from __future__ import annotations

import logging
import os
import socket

from mario.config import ConfigError, TrainConfig
from mario.distributed.collector import INLINE_ENV
from mario.errors import first_line
from mario.training.collector import EXIT_CLUSTER_LOST

#: Seconds to wait for the cluster's GCS port to accept a TCP connection.
PROBE_TIMEOUT_S = 5.0


class ClusterUnreachable(ConfigError):
    """No Ray cluster answers at the address. Not bad input alone: a cluster that is down for
    now comes back, so ``mario train`` exits with
    :data:`~mario.training.collector.EXIT_CLUSTER_LOST` (even with ``--idle-when-done``) and a
    restart policy retries."""

    exit_status = EXIT_CLUSTER_LOST


def set_ray_defaults() -> None:
    """Ray's settings for this process, and for the daemons of a Ray instance it starts (they
    inherit its environment): call before ``ray.init``. A setting already in the environment
    wins."""
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")  # workers: this interpreter
    # Ray starts two workers ahead for the first driver, in the job's runtime environment; the
    # actors run in their own (INLINE_ENV), so those two would only idle, a process each
    os.environ.setdefault("RAY_prestart_worker_first_driver", "0")


def connect(cfg: TrainConfig) -> None:
    """Join the cluster at ``cfg.dist.ray_address`` (once per process; ``local``: start a
    private Ray instance on this machine, as ``ray.init(address="local")`` does) and check
    that it has a CPU per actor; ConfigError (one line) otherwise."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            '--ray-address needs Ray: pip install "mario[distributed]" (or ray>=2.60)'
        ) from None
    address = cfg.dist.ray_address
    if not ray.is_initialized():
        set_ray_defaults()
        # Ray's driver exits (status 1, silently) when the head has not answered for this long
        # (60 s by default): leave the trainer time to notice the loss itself and save.
        os.environ.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", "600")
        for name, value in INLINE_ENV.items():  # weights go to the relay inside the call
            os.environ.setdefault(name, value)
        target = "local" if address == "local" else _resolve(address)
        if target != "local":
            _probe(address, target)
        try:  # local: Ray's convention for a private instance on this machine, ended with us
            ray.init(
                address=target,
                logging_level=logging.WARNING,
                log_to_driver=True,
                include_dashboard=False if target == "local" else None,
            )
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise ClusterUnreachable(
                f"cannot join the Ray cluster at {address} ({target}): {first_line(error)}"
            ) from None
    else:  # this process joined a cluster before (the Python API): it must be that one
        joined = ray.get_runtime_context().gcs_address
        anywhere = address in ("auto", "local")
        if not anywhere and address.rpartition(":")[2] != joined.rpartition(":")[2]:
            raise ConfigError(
                f"bad value {address!r} for ray_address: this process is already connected to "
                f"the Ray cluster at {joined} (pass auto, or that address)"
            )
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if cfg.dist.num_actors > cpus:
        raise ConfigError(
            f"bad value {cfg.dist.num_actors} for num_actors: the Ray cluster at {address} has "
            f"{cpus} CPUs and each actor takes one (add machines with ray start --address, or "
            f"use --num-actors {max(1, cpus)} or fewer)"
        )


def _resolve(address: str) -> str:
    """``auto`` (the cluster this machine joined last, or RAY_ADDRESS) or HOST:PORT, as
    HOST:PORT."""
    from ray._private.services import canonicalize_bootstrap_address

    quiet = logging.getLogger("ray._private.services")  # it logs a traceback, then raises
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        target = canonicalize_bootstrap_address(address)
    except (ConnectionError, ValueError) as error:
        raise ClusterUnreachable(_unreachable(address, str(error).splitlines()[0])) from None
    finally:
        quiet.setLevel(level)
    if not target:
        raise ClusterUnreachable(_unreachable(address, "no running Ray cluster found"))
    return target


def _probe(address: str, target: str) -> None:
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(
            f"bad value {address!r} for ray_address: expected auto, local or HOST:PORT"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as error:
        raise ClusterUnreachable(
            _unreachable(address, f"{target}: {error.strerror or type(error).__name__}")
        ) from None


def _unreachable(address: str, why: str) -> str:
    return (
        f"cannot reach the Ray cluster at {address} ({why}): start it with ray start --head "
        "on the learner machine, then pass --ray-address auto there (or HOST:PORT)"
    )
