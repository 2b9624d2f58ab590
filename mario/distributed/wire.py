"""What a remote actor sends the learner: a batch of steps of its envs, frames compressed.

A batch of ``T`` vector steps of an actor's ``K`` envs carries only the newest frame of each
observation, never the stack (the replay memory rebuilds stacks): ``T + 1`` rows of frames
(row ``t``: the frame acted on at step ``t``; row ``T``: the frame after the last step, the
true next frame of step ``T - 1``) plus the final frame of every episode that ended, all
zlib-compressed (level 1: ~0.5 KB per 7 KB Mario frame, ~15 µs, measured by ``mario bench
distributed``), with actions, rewards, terminations, truncations, the finished episodes and
the version of the weights that chose the actions.

A PPO rollout (:func:`restack`) adds the ``K`` observation stacks the rollout started from
(``head``): with them and the episode boundaries the learner rebuilds every step's stack, as
the frame-stack wrapper built it (after a reset every slot holds the first frame), so the
stacks still cross the network one frame per step.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

from mario.algos.base import Transition
from mario.training.collector import EpisodeEnd

#: zlib level: 1 compresses Mario frames 14x at ~15 µs each; 6 gains 20% for twice the time.
LEVEL = 1


@dataclass
class Batch:
    """``T`` steps of one actor's ``K`` envs (see the module docstring)."""

    actor: int
    first_env: int
    """The run-wide index of the actor's first env (its replay stream)."""
    version: int
    """The learner's update count when the weights that acted were sent (-1: random play)."""
    shape: tuple[int, int, int, int]
    """``(T, K, H, W)``."""
    frames: bytes
    """zlib of uint8 ``(T + 1, K, H, W)``."""
    finals: bytes
    """zlib of uint8 ``(F, H, W)``: the final frame of each ended step, in (t, k) order."""
    action: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    episodes: list[EpisodeEnd] = field(default_factory=list)
    first: bool = False
    """The actor's first batch: its envs started new episodes (a new or replaced actor)."""
    head: bytes = b""
    """zlib of uint8 ``(K, S, H, W)``: the stacks acted on at step 0 (PPO rollouts only)."""
    stack: int = 0
    """``S``, the frames per observation, when ``head`` is set."""

    @property
    def steps(self) -> int:
        """Transitions in the batch (``T * K``)."""
        return self.shape[0] * self.shape[1]

    def nbytes(self) -> int:
        """Payload bytes on the wire (frames, finals and the per-step arrays)."""
        arrays = (self.action, self.reward, self.terminated, self.truncated)
        frames = len(self.frames) + len(self.finals) + len(self.head)
        return frames + sum(a.nbytes for a in arrays)


def encode(
    actor: int,
    first_env: int,
    version: int,
    frames: np.ndarray,
    finals: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    episodes: list[EpisodeEnd],
    *,
    first: bool = False,
    head: np.ndarray | None = None,
) -> Batch:
    """Pack one actor's ``T`` steps: ``frames`` uint8 ``(T + 1, K, H, W)``, ``finals`` uint8
    ``(F, H, W)`` (one per True of ``terminated | truncated``, in (t, k) order), the rest
    ``(T, K)``; ``head`` uint8 ``(K, S, H, W)``: the step-0 stacks (PPO rollouts)."""
    t1, k, h, w = frames.shape
    done = int(np.count_nonzero(terminated | truncated))
    if finals.shape != (done, h, w):
        raise ValueError(f"finals must have shape {(done, h, w)}, got {finals.shape}")
    return Batch(
        actor,
        first_env,
        version,
        (t1 - 1, k, h, w),
        zlib.compress(np.ascontiguousarray(frames, np.uint8).data, LEVEL),
        zlib.compress(np.ascontiguousarray(finals, np.uint8).data, LEVEL),
        action.astype(np.uint8),
        reward.astype(np.float32),
        terminated.astype(bool),
        truncated.astype(bool),
        episodes,
        first,
        b"" if head is None else zlib.compress(np.ascontiguousarray(head, np.uint8).data, LEVEL),
        0 if head is None else head.shape[1],
    )


def decode(batch: Batch) -> Transition:
    """The batch as one transition of ``T`` steps of its ``K`` envs (newest frames only,
    ``streams`` set, ``cut`` when the actor's envs started over)."""
    t, k, h, w = batch.shape
    frames = _inflate(batch.frames).reshape(t + 1, k, h, w)
    finals = _inflate(batch.finals).reshape(-1, h, w)
    # Ray hands arrays over read-only (zero copy); these are small, the frames are ours
    reward, terminated, truncated = (
        np.array(a) for a in (batch.reward, batch.terminated, batch.truncated)
    )
    next_frames = frames[1:].copy()  # where an episode ended, its final frame instead
    next_frames[terminated | truncated] = finals
    return Transition(
        frames[:-1],
        batch.action.astype(np.int64),
        reward,
        terminated,
        truncated,
        next_frames,
        streams=np.arange(batch.first_env, batch.first_env + k),
        cut=batch.first,
    )


def restack(batch: Batch) -> list[Transition]:
    """A PPO rollout batch as ``T`` transitions of whole observation stacks ``(K, S, H, W)``,
    ``next_obs`` the true next stack (the final one where an episode ended), rebuilt from
    ``head`` and :func:`decode`'s newest frames as :class:`wrappers.FrameStack` builds them."""
    if not batch.head:
        raise ValueError("restack needs a rollout batch (with head stacks)")
    steps = decode(batch)
    t_max, k, h, w = batch.shape
    obs = _inflate(batch.head).reshape(k, batch.stack, h, w)
    out: list[Transition] = []
    for t in range(t_max):
        following = np.concatenate([obs[:, 1:], steps.next_obs[t][:, None]], axis=1)
        out.append(
            Transition(
                obs,
                steps.action[t],
                steps.reward[t],
                steps.terminated[t],
                steps.truncated[t],
                following,
            )
        )
        done = np.flatnonzero(steps.terminated[t] | steps.truncated[t])
        if done.size and t + 1 < t_max:  # the next episode's first stack: its first frame
            following = following.copy()  # in every slot
            following[done] = steps.obs[t + 1][done, None]
        obs = following
    return out


def _inflate(data: bytes) -> np.ndarray:
    out = bytearray(zlib.decompress(data))  # writable, unlike the bytes it came in
    return np.frombuffer(out, np.uint8)


def pack_weights(weights: dict[str, torch.Tensor]) -> bytes:
    """The learner's acting weights as bytes for a broadcast (the relay that puts them into
    the object store then needs no torch)."""
    buffer = io.BytesIO()
    torch.save(weights, buffer)
    return buffer.getvalue()


def unpack_weights(data: bytes) -> dict[str, torch.Tensor]:
    """:func:`pack_weights`'s weights back (tensors only: ``weights_only``)."""
    weights: dict[str, torch.Tensor] = torch.load(io.BytesIO(data), weights_only=True)
    return weights
