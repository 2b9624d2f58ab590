"""The learner's side of the actors: :class:`RayCollector`, in place of the local Collector.

It starts ``num_actors`` :class:`~mario.distributed.actor.EnvActor` s (one CPU each), keeps
``actor_inflight`` :meth:`~EnvActor.collect` calls queued per actor (backpressure: an actor
whose batches the learner has not taken yet waits), hands the runner one batch per
:meth:`receive`, and every ``weights_every`` seconds puts the online head's weights into Ray's
object store once and sends every actor the reference (Ray moves the bytes once per node).
With ``ordered`` it takes the batches in turn (actor 0, 1, ..., 0, ...) and broadcasts after
each round: every actor then runs the same calls in the same order on every run (Ray runs one
caller's calls to an actor in order), so a seeded run is reproducible.

Every call to an actor may find it dead (its process or its machine gone) or failing (an
exception inside it): the error (``RayActorError`` and its kin, a lost result object, or
``RayTaskError``) is caught where the result is read; the batch is dropped, the actor is
replaced by a new one (with the newest weights; its envs start new episodes, and the replay
memory cuts the lost ones), and training goes on. Calls whose result is not read (weight
broadcasts) surface a death through the next batch. Two things end the run instead, with a
checkpoint (:class:`~mario.training.collector.EmulatorsLost`): the cluster itself gone, and an actor
slot that failed :data:`MAX_FAILURES` times in a row (the same error would come back
forever). The cluster is gone when this machine's raylet is (checked before every call into
Ray: Ray ends the driver process at once, unsaved, when it touches a dead raylet's object
store; batches come back in the calls' replies, :data:`INLINE_BYTES`, so that taking one does
not touch it) or the head's GCS port refuses connections (probed after every failure and every few
seconds without a batch, well before Ray's driver would give up on its own reconnect
timeout, which :func:`mario.distributed.cluster.connect` raises to 10 minutes).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from mario.algos.base import Transition
from mario.config import TrainConfig
from mario.distributed.actor import EnvActor, EnvFn
from mario.distributed.relay import WeightsRelay
from mario.distributed.wire import Batch, decode, pack_weights
from mario.training.collector import (
    EXIT_ACTORS_FAILING,
    EXIT_CLUSTER_LOST,
    EmulatorsLost,
    EpisodeEnd,
)

#: ``weights() -> (online weights, update count, agent step)`` of the learner, on call.
WeightsFn = Callable[[], tuple[dict[str, torch.Tensor], int, int]]
#: Seconds :meth:`RayCollector.receive` waits for a batch before returning none (the loop then
#: checks for a stop signal); a warning after this many seconds without any.
WAIT_S = 1.0
STARVED_WARN_S = 60.0
#: Seconds without a batch after which the cluster's head is probed (then again as often).
PROBE_EVERY_S = 5.0
#: Failures in a row of one actor slot (no batch in between) that end the run.
MAX_FAILURES = 3
#: Values up to this size travel inside Ray's calls and replies (Ray's default: 100 KB; larger
#: ones go through the object store of the machine, over a socket to its raylet). The learner
#: sends its weights to the :class:`~mario.distributed.relay.WeightsRelay` and takes batches
#: this way, so it never touches the store: Ray ends a driver whose object-store socket breaks
#: (the raylet killed) at once and unsaved. Set for the actors by their runtime env and for
#: the learner by :func:`mario.distributed.cluster.connect` before it joins.
INLINE_BYTES = 64 << 20
INLINE_ENV = {
    "RAY_max_direct_call_object_size": str(INLINE_BYTES),
    "RAY_task_rpc_inlined_bytes_limit": str(INLINE_BYTES),
}
#: Seconds to wait for the relay's put (its first call waits for its process to start).
PUT_TIMEOUT_S = 120.0


def _failure_errors() -> tuple[type[BaseException], ...]:
    from ray.exceptions import (
        ObjectLostError,
        OwnerDiedError,
        RayActorError,
        RayTaskError,
        WorkerCrashedError,
    )

    return (RayActorError, WorkerCrashedError, ObjectLostError, OwnerDiedError, RayTaskError)


_RESUME = (
    f". The run saved here; resume it once the cluster is back (a restart policy does: exit "
    f"status {EXIT_CLUSTER_LOST})"
)


def _why(error: BaseException) -> str:
    """An actor failure in a few words: an exception raised inside the actor by its own
    type and message (not Ray's wrapper with the remote traceback)."""
    cause = getattr(error, "cause", None)
    shown = cause if isinstance(cause, BaseException) else error
    text = re.sub(r"\x1b\[[0-9;]*m", "", f"{type(shown).__name__}: {shown}")
    return " ".join(text.split())[:160]


def local_raylet_pid() -> int | None:
    """The pid of this machine's raylet (its plasma store holds what the driver puts), found
    once by its socket in ``/proc``; None where that cannot be told (not Linux, not found)."""
    import ray

    node = getattr(ray._private.worker.global_worker, "node", None)
    name = getattr(node, "raylet_socket_name", None)
    if not name or not os.path.isdir("/proc"):
        return None
    flag = f"--raylet_socket_name={name}".encode()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    if flag in f.read().split(b"\0"):
                        return int(entry.name)
            except OSError:
                continue
    return None


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed but not reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def head_reachable(gcs_address: str, timeout: float = 2.0) -> bool:
    """Whether the cluster head's GCS port (``HOST:PORT``) accepts a TCP connection."""
    host, _, port = gcs_address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


class RayCollector:
    """Batches from remote actors for the runner's loop (see the module docstring)."""

    chooses_actions = True
    """The actors choose the actions: the loop does not call ``algorithm.act``."""

    def __init__(
        self,
        cfg: TrainConfig,
        n_actions: int,
        weights: WeightsFn,
        *,
        seed: int,
        env_fn: EnvFn | None = None,
    ) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.cfg = cfg
        self.n_actions = n_actions
        self.weights = weights
        self.seed = seed
        self.env_fn = env_fn
        self.num_envs = cfg.run.num_envs
        # Every failure is reported here, in one line; the batches dropped with a failed
        # actor would otherwise each be logged by Ray with a traceback.
        os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
        self._remote: Any = ray.remote(
            num_cpus=1, max_restarts=0, runtime_env={"env_vars": INLINE_ENV}
        )(EnvActor)
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        self._relay_class: Any = ray.remote(WeightsRelay).options(
            num_cpus=0, max_restarts=0, scheduling_strategy=here
        )
        self._relay: Any = None
        self._failure_types = _failure_errors()
        self._gcs = ray.get_runtime_context().gcs_address
        self._raylet = local_raylet_pid()
        self._next_probe = 0.0
        n = cfg.dist.num_actors
        self.actors: list[Any] = [None] * n
        self.inflight: dict[Any, int] = {}  # collect() result ref -> actor index
        self.starts = [0] * n  # actors started per slot (1 + restarts)
        self.failures = [0] * n  # per slot: failures since its last batch
        self.restarts = 0
        self.dropped = 0
        self.versions = [-1] * n
        """Per actor slot: the weights version of its newest batch (-1: random play)."""
        self._weights_ref: Any = None
        self._weights_meta = (-1, 0)
        self._next_broadcast = 0.0
        self._turn = 0  # with ``ordered``: the actor whose batch comes next
        self._waiting_since = time.monotonic()
        self._batches = 0
        self._wire_bytes = 0
        self._wire_steps = 0
        self._lag = [0, 0]  # sum, batches: how many updates old the acting weights were

    # -- the loop's calls ---------------------------------------------------------------------
    def reset(self, state: dict[str, Any] | None = None) -> None:
        """Start the actors; they act themselves, so there is no observation to return. Their
        processes start while the relay puts the first weights, which come first in every
        actor's queue of calls."""
        for i in range(len(self.actors)):
            self.actors[i] = self._new_actor(i)
        self._broadcast()
        for i in range(len(self.actors)):
            self._refill(i)

    def send(self, obs: Any, actions: Any) -> None:
        """Nothing to send per step (the actors act); weights when a broadcast is due (with
        ``ordered``, after each round of batches instead: see :meth:`receive`)."""
        if not self.cfg.dist.ordered and time.monotonic() >= self._next_broadcast:
            self._broadcast()

    def receive(self) -> tuple[None, list[Transition], list[EpisodeEnd]]:
        """One batch from whichever actor finished first (none after ``WAIT_S``, or when the
        batch was lost with its actor): ``(None, transitions, episodes ended)``."""
        import ray

        self._check_raylet()

        # Wait on each actor's oldest call only: an actor runs its calls in order, and its
        # streams must reach the replay memory in that order; with several of one actor's
        # results ready, ray.wait(num_returns=1) may hand back a later one first.
        oldest: dict[int, Any] = {}
        for ref, j in self.inflight.items():  # insertion order = submission order
            oldest.setdefault(j, ref)
        if self.cfg.dist.ordered:  # only the actor whose turn it is
            oldest = {self._turn: oldest[self._turn]}
        ready, _ = ray.wait(list(oldest.values()), num_returns=1, timeout=WAIT_S, fetch_local=False)
        if not ready:
            self._starving()
            return None, [], []
        ref = ready[0]
        i = self.inflight.pop(ref)
        self._check_raylet()  # a batch over INLINE_BYTES is read from the object store
        try:
            batch: Batch = ray.get(ref)
        except self._failure_types as error:
            self._replace(i, error)
            return None, [], []
        self._waiting_since = time.monotonic()
        self.failures[i] = 0
        if self.cfg.dist.ordered:  # the next actor's turn; a round ends with a broadcast
            self._turn = (i + 1) % len(self.actors)
            if self._turn == 0:
                self._broadcast()
        self._submit(i)
        self._count(i, batch)
        if batch.version >= 0:
            self._lag[0] += self._weights_meta[0] - batch.version
            self._lag[1] += 1
        return None, [decode(batch)], batch.episodes

    def _count(self, i: int, batch: Batch) -> None:
        """Note actor ``i``'s batch for :meth:`metrics` and :attr:`versions`."""
        self._batches += 1
        self._wire_bytes += batch.nbytes()
        self._wire_steps += batch.steps
        self.versions[i] = batch.version

    def sync(self) -> None:
        """Nothing to merge (no start archive across machines)."""

    def explore_floor(self) -> None:
        """None: the actors explore by their own settings."""
        return None

    def state_dict(self) -> None:
        """None: nothing of the actors outlives them (their episodes restart on resume)."""
        return None

    def metrics(self) -> dict[str, float]:
        """For the train log: actors, restarts, batches, wire bytes per transition and how many
        updates old the weights that acted were, since the last call."""
        out: dict[str, float] = {
            "actors": sum(a is not None for a in self.actors),
            "actor_restarts": self.restarts,
            "batches_dropped": self.dropped,
        }
        if self._wire_steps:
            out["wire_bytes_per_step"] = round(self._wire_bytes / self._wire_steps, 1)
        if self._lag[1]:
            out["weights_lag_updates"] = round(self._lag[0] / self._lag[1], 1)
        self._wire_bytes = self._wire_steps = 0
        self._lag = [0, 0]
        return out

    def close(self) -> None:
        import ray

        for actor in [*self.actors, self._relay]:
            if actor is not None:
                with contextlib.suppress(Exception):  # already gone with its machine
                    ray.kill(actor, no_restart=True)
        self.actors = [None] * len(self.actors)
        self._relay = None
        self.inflight.clear()

    # -- actors -------------------------------------------------------------------------------
    def _new_actor(self, i: int) -> Any:
        """A new actor for slot ``i`` (its seeds new on every start)."""
        seed = self.seed + 1_000 * i + 1_000_000 * self.starts[i]
        self.starts[i] += 1
        return self._remote.remote(self.cfg, self.n_actions, i, seed, self.env_fn)

    def _start(self, i: int) -> None:
        """Start actor ``i`` again: the newest weights, ``actor_inflight`` calls."""
        actor = self.actors[i] = self._new_actor(i)
        version, step = self._weights_meta
        actor.set_weights.remote(self._weights_ref, version, step)
        self._refill(i)

    def _refill(self, i: int) -> None:
        """Queue a started actor's first calls: ``actor_inflight`` batches."""
        for _ in range(self.cfg.dist.actor_inflight):
            self._submit(i)

    def _submit(self, i: int) -> None:
        self.inflight[self.actors[i].collect.remote()] = i

    def _replace(self, i: int, error: BaseException) -> None:
        """Drop actor ``i``'s batches in flight and start a new actor in its place, unless the
        cluster is gone or the slot keeps failing (:class:`EmulatorsLost`)."""
        import ray

        self._check_head()
        why = _why(error)
        self.failures[i] += 1
        if self.failures[i] >= MAX_FAILURES:
            raise EmulatorsLost(
                f"actor {i} failed {self.failures[i]} times in a row without a batch, last "
                f"with {why}",
                EXIT_ACTORS_FAILING,
            )
        lost = [ref for ref, j in self.inflight.items() if j == i]
        for ref in lost:
            del self.inflight[ref]
        self.dropped += 1 + len(lost)
        self.restarts += 1
        with contextlib.suppress(Exception):  # already gone
            ray.kill(self.actors[i], no_restart=True)
        print(
            f"actor {i} failed ({why}): dropped its batches, starting a new one",
            file=sys.stderr,
            flush=True,
        )
        self._start(i)

    def _broadcast(self) -> None:
        """The learner's weights into the object store once (by the relay); every actor gets
        the reference."""
        weights, version, step = self.weights()
        self._weights_ref = self._put(pack_weights(weights))
        self._weights_meta = (version, step)
        for actor in self.actors:
            if actor is not None:
                actor.set_weights.remote(self._weights_ref, version, step)
        self._next_broadcast = time.monotonic() + self.cfg.dist.weights_every

    def _put(self, weights: bytes) -> Any:
        """A reference to ``weights`` in the object store, put there by the relay (started
        again once if it failed; the cluster's loss ends the run)."""
        import ray
        from ray.exceptions import GetTimeoutError

        why = ""
        failures: tuple[type[BaseException], ...] = (GetTimeoutError, *self._failure_types)
        for _ in range(2):
            self._check_raylet()
            if self._relay is None:
                self._relay = self._relay_class.remote()
            try:
                return ray.get(self._relay.put.remote(weights), timeout=PUT_TIMEOUT_S)[0]
            except failures as error:
                self._check_head()
                why = _why(error)
                with contextlib.suppress(Exception):
                    ray.kill(self._relay, no_restart=True)
                self._relay = None
        raise EmulatorsLost(
            f"the weights relay failed twice in a row, last with {why}", EXIT_ACTORS_FAILING
        )

    def _check_raylet(self) -> None:
        """:class:`EmulatorsLost` if this machine's raylet is gone. Checked before every call
        into Ray (a few microseconds): Ray ends the driver process at once, unsaved, when
        it touches the object store of a dead raylet."""
        if self._raylet is not None and not process_alive(self._raylet):
            raise EmulatorsLost(
                f"lost the Ray cluster: this machine's raylet (pid {self._raylet}) is gone"
                f"{_RESUME}",
                EXIT_CLUSTER_LOST,
            )

    def _check_head(self) -> None:
        """:class:`EmulatorsLost` if the cluster's head (or this machine's raylet) no longer
        answers."""
        self._check_raylet()
        if not head_reachable(self._gcs):
            raise EmulatorsLost(
                f"lost the Ray cluster: its head ({self._gcs}) does not answer{_RESUME}",
                EXIT_CLUSTER_LOST,
            )

    def _starving(self) -> None:
        now = time.monotonic()
        if now - self._waiting_since >= PROBE_EVERY_S and now >= self._next_probe:
            self._next_probe = now + PROBE_EVERY_S
            self._check_head()
        waited = time.monotonic() - self._waiting_since
        if waited >= STARVED_WARN_S:
            print(
                f"no batch from any actor for {waited:.0f} s: are the CPU machines up "
                "(ray status)? Waiting",
                file=sys.stderr,
                flush=True,
            )
            self._waiting_since = time.monotonic()
