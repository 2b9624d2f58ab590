"""The learner's side of the actors: :class:`RayCollector`, in place of the local Collector.

It starts ``num_actors`` :class:`~mario.distributed.actor.EnvActor` s (one CPU each), keeps
``actor_inflight`` :meth:`~EnvActor.collect` calls queued per actor (backpressure: an actor
whose batches the learner has not taken yet waits), hands the runner one batch per
:meth:`receive`, and every ``weights_every`` seconds puts the online head's weights into Ray's
object store once and sends every actor the reference (Ray moves the bytes once per node).
With ``ordered`` it takes the batches in turn (actor 0, 1, ..., 0, ...) and broadcasts after
each round: every actor then runs the same calls in the same order on every run (Ray runs one
caller's calls to an actor in order), so a seeded run is reproducible.

Every call to an actor may find it dead (its process or its machine gone): the error
(``RayActorError`` and its kin, or a lost result object) is caught where the result is read;
the batch is dropped, the actor is replaced by a new one (with the newest weights; its envs
start new episodes, and the replay memory cuts the lost ones), and training goes on. Calls
whose result is not read (weight broadcasts) surface a death through the next batch.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from mario.algos.base import Transition
from mario.collector import EpisodeEnd
from mario.config import TrainConfig
from mario.distributed.actor import EnvActor, EnvFn
from mario.distributed.wire import Batch, decode

#: ``weights() -> (online weights, update count, agent step)`` of the learner, on call.
WeightsFn = Callable[[], tuple[dict[str, torch.Tensor], int, int]]
#: Seconds :meth:`RayCollector.receive` waits for a batch before returning none (the loop then
#: checks for a stop signal); a warning after this many seconds without any.
WAIT_S = 1.0
STARVED_WARN_S = 60.0


def _death_errors() -> tuple[type[BaseException], ...]:
    from ray.exceptions import ObjectLostError, OwnerDiedError, RayActorError, WorkerCrashedError

    return (RayActorError, WorkerCrashedError, ObjectLostError, OwnerDiedError)


class RayCollector:
    """Batches from remote actors for the runner's loop (see the module docstring)."""

    acts = True
    """The actors choose the actions: the loop does not call ``algorithm.act``."""
    archive = False
    archive_state: dict[str, Any] | None = None
    rebuild_frames = 0

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

        self.cfg = cfg
        self.n_actions = n_actions
        self.weights = weights
        self.seed = seed
        self.env_fn = env_fn
        self.num_envs = cfg.run.num_envs
        self.from_archive = np.zeros(self.num_envs, dtype=bool)
        self._remote: Any = ray.remote(num_cpus=1, max_restarts=0)(EnvActor)
        self._dead = _death_errors()
        n = cfg.dist.num_actors
        self.actors: list[Any] = [None] * n
        self.inflight: dict[Any, int] = {}  # collect() result ref -> actor index
        self.starts = [0] * n  # actors started per slot (1 + restarts)
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
    def reset(self, archive_state: dict[str, Any] | None = None) -> None:
        """Start the actors; they act themselves, so there is no observation to return."""
        self._broadcast()
        for i in range(len(self.actors)):
            self._start(i)

    def send(self, obs: Any, actions: Any) -> None:
        """Nothing to send per step (the actors act); weights when a broadcast is due (with
        ``ordered``, after each round of batches instead: see :meth:`receive`)."""
        if not self.cfg.dist.ordered and time.monotonic() >= self._next_broadcast:
            self._broadcast()

    def receive(self) -> tuple[None, list[Transition], list[EpisodeEnd]]:
        """One batch from whichever actor finished first (none after ``WAIT_S``, or when the
        batch was lost with its actor): ``(None, transitions, episodes ended)``."""
        import ray

        # Wait on each actor's oldest call only: an actor runs its calls in order, and its
        # streams must reach the replay memory in that order; with several of one actor's
        # results ready, ray.wait(num_returns=1) may hand back a later one first.
        oldest: dict[int, Any] = {}
        for ref, j in self.inflight.items():  # insertion order = submission order
            oldest.setdefault(j, ref)
        if self.cfg.dist.ordered:  # only the actor whose turn it is
            oldest = {self._turn: oldest[self._turn]}
        ready, _ = ray.wait(list(oldest.values()), num_returns=1, timeout=WAIT_S)
        if not ready:
            self._starving()
            return None, [], []
        ref = ready[0]
        i = self.inflight.pop(ref)
        try:
            batch: Batch = ray.get(ref)
        except self._dead as error:
            self._replace(i, error)
            return None, [], []
        self._waiting_since = time.monotonic()
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

        for actor in self.actors:
            if actor is not None:
                with contextlib.suppress(Exception):  # already gone with its machine
                    ray.kill(actor, no_restart=True)
        self.actors = [None] * len(self.actors)
        self.inflight.clear()

    # -- actors -------------------------------------------------------------------------------
    def _start(self, i: int) -> None:
        """Start actor ``i`` (again): new seeds, the newest weights, ``actor_inflight`` calls."""
        seed = self.seed + 1_000 * i + 1_000_000 * self.starts[i]
        self.starts[i] += 1
        actor = self._remote.remote(self.cfg, self.n_actions, i, seed, self.env_fn)
        self.actors[i] = actor
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
        """Drop actor ``i``'s batches in flight and start a new actor in its place."""
        import ray

        lost = [ref for ref, j in self.inflight.items() if j == i]
        for ref in lost:
            del self.inflight[ref]
        self.dropped += 1 + len(lost)
        self.restarts += 1
        with contextlib.suppress(Exception):  # already gone
            ray.kill(self.actors[i], no_restart=True)
        why = " ".join(str(error).split())[:160]
        print(
            f"actor {i} died ({type(error).__name__}: {why}): dropped its batches, starting "
            "a new one",
            file=sys.stderr,
            flush=True,
        )
        self._start(i)

    def _broadcast(self) -> None:
        """Put the learner's weights into the object store once; every actor gets the ref."""
        import ray

        weights, version, step = self.weights()
        self._weights_ref = ray.put(weights)
        self._weights_meta = (version, step)
        for actor in self.actors:
            if actor is not None:
                actor.set_weights.remote(self._weights_ref, version, step)
        self._next_broadcast = time.monotonic() + self.cfg.dist.weights_every

    def _starving(self) -> None:
        waited = time.monotonic() - self._waiting_since
        if waited >= STARVED_WARN_S:
            print(
                f"no batch from any actor for {waited:.0f} s: are the CPU machines up "
                "(ray status)? Waiting",
                file=sys.stderr,
                flush=True,
            )
            self._waiting_since = time.monotonic()
