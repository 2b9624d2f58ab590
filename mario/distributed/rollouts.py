"""Synchronous PPO rollouts on a Ray cluster: :class:`RolloutCollector`.

Each round the learner puts its actor-critic's weights into the object store once, every
actor plays one rollout of ``n_steps`` with them (sampling its own actions), and the learner
waits for all of them, rebuilds the observation stacks (:func:`~mario.distributed.wire.restack`)
and hands the runner the rollout as ``n_steps`` vector steps of all the run's envs, in env
order, exactly as the local collector would. The runner stores them, PPO updates (it rates
the actions with the same weights that chose them), and the next :meth:`receive` starts the
next round with the new weights: the actors wait while the learner learns, as in
synchronous PPO (A2C/PPO's usual shape), so no rollout is ever off-policy.

An actor that dies mid-round is replaced (:class:`~mario.distributed.collector.RayCollector`
handles it the same way) and the new one plays the round's rollout again with the round's
weights; its envs start new episodes, which PPO needs nothing from the old ones for (no
rollout reaches across rounds).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from mario.algos.base import Transition
from mario.distributed.collector import WAIT_S, RayCollector
from mario.distributed.wire import Batch, restack
from mario.training.collector import EpisodeEnd


class RolloutCollector(RayCollector):
    """One synchronous rollout of every actor per round (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._round: dict[int, Batch] = {}  # actor slot -> its rollout of this round
        self._playing = False  # a round was submitted and is not complete

    def send(self, obs: Any, actions: Any) -> None:
        """Nothing: a round starts in :meth:`receive`, after the learner's update."""

    def receive(self) -> tuple[None, list[Transition], list[EpisodeEnd]]:
        """The round's rollouts as vector steps of all envs, once every actor's is in
        (nothing after ``WAIT_S`` without all of them, so the loop can check for a stop
        signal); starts a round with the newest weights when none is being played."""
        import ray

        self._check_raylet()
        if not self._playing:
            self._broadcast()
            self._round.clear()
            for i in range(len(self.actors)):
                self._submit(i)
            self._playing = True
        ready, _ = ray.wait(
            list(self.inflight), num_returns=len(self.inflight), timeout=WAIT_S, fetch_local=False
        )
        for ref in ready:
            i = self.inflight.pop(ref)
            self._check_raylet()  # see RayCollector.receive
            try:
                self._round[i] = ray.get(ref)
            except self._failure_types as error:
                self._replace(i, error)  # the new actor plays this round's rollout again
        if self.inflight:
            self._starving()
            return None, [], []
        self._playing = False
        self._waiting_since = time.monotonic()
        return None, *self._merge()

    def _merge(self) -> tuple[list[Transition], list[EpisodeEnd]]:
        """The actors' rollouts side by side: step ``t`` of all envs, in env order."""
        batches = [self._round[i] for i in range(len(self.actors))]
        per_actor = [restack(batch) for batch in batches]
        episodes = [e for batch in batches for e in batch.episodes]
        for i, batch in enumerate(batches):
            self._count(i, batch)
        steps = [_side_by_side(ts) for ts in zip(*per_actor, strict=True)]
        return steps, episodes

    def _refill(self, i: int) -> None:
        """A replaced actor plays the current round's rollout (none between rounds)."""
        if self._playing and i not in self._round:
            self._submit(i)


def _side_by_side(steps: tuple[Transition, ...]) -> Transition:
    """One vector step of all envs from the actors' steps (each of its ``K`` envs)."""

    def joined(name: str) -> np.ndarray:
        return np.concatenate([getattr(t, name) for t in steps])

    return Transition(
        joined("obs"),
        joined("action"),
        joined("reward"),
        joined("terminated"),
        joined("truncated"),
        joined("next_obs"),
    )
