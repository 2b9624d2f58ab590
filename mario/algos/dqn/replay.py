"""Replay memory for the Double-DQN trainer: every frame is stored once, stacks are rebuilt.

Layout
    Each env of the vector env owns a circular stream of slots: one column of ``[rows, E]``
    tensors held in a dict of columns (metadata, CPU) plus a uint8 frame tensor
    ``[rows, E, H, W]`` on ``device``. One vector step writes one slot per env: the newest frame
    of ``obs`` with action, reward, terminated, truncated and ``ep_pos`` (the step's index in its
    episode). A step that ends its episode also writes the newest frame of the true final
    observation into the next slot, a *final* slot that is never sampled as a start.

Stacks
    Frame ``j`` (newest last) of the stack ending at slot ``p`` is slot
    ``p - min(stack - 1 - j, ep_pos[p])``: stacks never reach before their episode's first
    frame and repeat it instead, exactly like FrameStack pads an episode's start.

Positions and validity
    Slot positions count up per env (0, 1, 2, ...); position ``p`` lives in row ``p % rows``.
    ``written[i]`` slots have been written to env ``i``; the live ones are
    ``[written - C, written)`` with ``C = capacity // num_envs``. Two spare rows
    (``rows = C + 2``) let :meth:`ReplayMemory.add` write the obs frame and a possible final
    frame for every env unconditionally (no per-env branch, no host sync on CUDA).
    A slot may be sampled iff it is live, not a final slot, its stack is live
    (``p - min(stack - 1, ep_pos) >= written - C``) and its n-step future is written
    (``p + k < written``, ``k`` = steps summed, stopping after an episode end). A bool mirror of
    that rule is updated on each add for the few positions whose validity can change (the
    ``n_step + 1`` newest and the ``stack + 1`` oldest), so sampling is a lookup.

Prioritized replay
    :class:`~mario.algos.dqn.sumtree.PriorityTree` keeps the sum and min trees in vectorised
    torch ops (TorchRL's ``PrioritizedSampler`` keeps them in a C++ extension that fails to
    load against torch 2.13), with TorchRL's conventions: leaf = ``(priority + eps) **
    alpha``, new transitions get the largest priority seen, weights ``(p_i / p_min) **
    -beta``. Invalid slots hold an exact 0.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mario.algos.dqn.sumtree import PriorityTree

__all__ = ["ReplayMemory"]

_FORMAT = "mario-replay"
_FORMAT_VERSION = 1
_CONFIG_FILE = "replay.json"
_FRAMES_FILE = "frames.u8"
_STATE_FILE = "state.pt"
_IO_CHUNK_BYTES = 64 << 20
# Settings a saved memory must share to load at all; the rest (capacity, num_envs, n_step,
# gamma, prioritized, alpha, eps) may differ: the streams are then transplanted.
_LOAD_MUST_MATCH = ("frame_shape", "stack")
# Settings under which the saved layout is this memory's own: restored byte for byte.
_SAME_LAYOUT = ("capacity", "num_envs", "prioritized", "alpha", "eps")

ArrayLike = np.ndarray | torch.Tensor
# action int64, reward float32, terminated/truncated/final/valid bool, ep_pos int64
_META_BYTES_PER_SLOT = 8 + 4 + 1 + 1 + 1 + 1 + 8


def _flat2(x: ArrayLike) -> ArrayLike:
    """``[T, E, ...]`` as ``[T * E, ...]``."""
    return x.reshape(-1, *x.shape[2:])


class ReplayMemory:
    """Replay memory of vector-env transitions with n-step returns (see the module docstring).

    ``capacity`` counts slots over all envs (per-env streams of ``capacity // num_envs``); each
    episode end spends one extra slot on its final frame. ``beta`` may be changed between
    samples (annealing); the n-step horizon too (:meth:`set_horizon`: fewer steps than
    ``n_step``, another ``gamma``), as n-step returns are summed at sample time.
    Metadata and priorities live on the CPU; frames on ``device``.
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        *,
        frame_shape: tuple[int, ...] = (84, 84),
        stack: int = 4,
        n_step: int = 1,
        gamma: float = 0.99,
        device: str | torch.device = "cpu",
        prioritized: bool = False,
        alpha: float = 0.6,
        beta: float = 0.4,
        eps: float = 1e-6,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if stack < 1:
            raise ValueError(f"stack must be >= 1, got {stack}")
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        per_env = capacity // num_envs
        if per_env <= n_step + stack:
            raise ValueError(
                f"capacity // num_envs must be > n_step + stack = {n_step + stack}, "
                f"got capacity={capacity}, num_envs={num_envs}"
            )
        frame_shape = tuple(int(d) for d in frame_shape)
        if not frame_shape or min(frame_shape) < 1:
            raise ValueError(
                f"frame_shape must be positive sizes such as (84, 84), got {frame_shape}"
            )
        if alpha < 0.0 or beta < 0.0:
            raise ValueError(f"alpha and beta must be >= 0, got alpha={alpha}, beta={beta}")
        if eps <= 0.0:
            raise ValueError(
                f"eps must be > 0 (it keeps zero-error transitions sampleable), got {eps}"
            )

        self.num_envs = num_envs
        self.capacity_per_env = per_env
        self.capacity = per_env * num_envs
        self.frame_shape = frame_shape
        self.stack = stack
        self.n_step = n_step
        self.set_horizon(n_step, gamma)  # checks gamma before any memory is allocated
        self.device = torch.device(device)
        self.prioritized = prioritized
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.eps = float(eps)

        rows = per_env + 2
        self._rows = rows
        self._frames = torch.zeros(
            (rows, num_envs, *frame_shape), dtype=torch.uint8, device=self.device
        )
        self._frames_flat = self._frames.view(rows * num_envs, *frame_shape)
        shape = (rows, num_envs)
        self._meta = {
            "action": torch.zeros(shape, dtype=torch.int64),
            "reward": torch.zeros(shape, dtype=torch.float32),
            "terminated": torch.zeros(shape, dtype=torch.bool),
            "truncated": torch.zeros(shape, dtype=torch.bool),
            "final": torch.zeros(shape, dtype=torch.bool),
            "ep_pos": torch.zeros(shape, dtype=torch.int64),
            "valid": torch.zeros(shape, dtype=torch.bool),
        }
        # Direct references: the hot path indexes the columns without a dict lookup.
        self._action = self._meta["action"]
        self._reward = self._meta["reward"]
        self._terminated = self._meta["terminated"]
        self._truncated = self._meta["truncated"]
        self._final = self._meta["final"]
        self._ep_pos = self._meta["ep_pos"]
        self._valid = self._meta["valid"]
        self._written = torch.zeros(num_envs, dtype=torch.int64)
        self._ep_pos_next = torch.zeros(num_envs, dtype=torch.int64)
        self._num_valid = 0

        self._envs = torch.arange(num_envs)
        # Positions (relative to the pre-add write position) whose validity an add can change.
        self._window = torch.cat([torch.arange(-n_step, 1), torch.arange(stack + 1) - per_env])
        self._back = torch.arange(stack - 1, -1, -1)  # frame j is back[j] slots before the newest

        self._tree = PriorityTree(rows * num_envs) if prioritized else None
        self._max_priority = 1.0

    def set_horizon(self, steps: int, gamma: float) -> None:
        """Sum ``steps`` rewards (at most ``n_step``, the lookahead a slot needs to be
        sampleable) discounted by ``gamma`` in the samples from now on: n-step and discount
        annealing, as in BBF (Schwarzer et al. 2023)."""
        if not 1 <= steps <= self.n_step:
            raise ValueError(f"steps must be in 1..n_step={self.n_step}, got {steps}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        self.horizon = int(steps)
        """The rewards a sample sums (``n_step`` unless :meth:`set_horizon` said fewer)."""
        self.gamma = float(gamma)
        self._steps = torch.arange(steps)
        powers = self.gamma ** torch.arange(steps + 1, dtype=torch.float64)
        self._gamma_pow = powers.to(torch.float32)
        self._discounts = self._gamma_pow[:steps]

    # ------------------------------------------------------------------ info
    def __len__(self) -> int:
        """Transitions that can be sampled now."""
        return self._num_valid

    def __repr__(self) -> str:
        return (
            f"ReplayMemory(len={len(self)}, capacity={self.capacity}, num_envs={self.num_envs}, "
            f"frame_shape={self.frame_shape}, stack={self.stack}, n_step={self.n_step}, "
            f"prioritized={self.prioritized}, device={self.device})"
        )

    def nbytes(self) -> int:
        """Bytes held by the memory: frames, metadata and priority trees."""
        total = self._frames.nbytes + sum(column.nbytes for column in self._meta.values())
        total += self._written.nbytes + self._ep_pos_next.nbytes
        if self._tree is not None:
            total += self._tree.nbytes
        return total

    @staticmethod
    def planned_bytes(
        capacity: int, num_envs: int, frame_shape: tuple[int, ...], *, prioritized: bool = False
    ) -> tuple[int, int]:
        """``(frame bytes on the device, metadata bytes on the host)`` that a memory with
        these settings allocates (what :meth:`nbytes` will say), without allocating it."""
        slots = (capacity // num_envs + 2) * num_envs
        frames = slots * int(np.prod(frame_shape))
        meta = slots * _META_BYTES_PER_SLOT + 16 * num_envs
        if prioritized:
            meta += 2 * 2 * (1 << max(1, (slots - 1).bit_length())) * 8  # sum and min trees
        return frames, meta

    def bytes_per_transition(self) -> float:
        """:meth:`nbytes` per slot of capacity (an episode end uses one extra slot)."""
        return self.nbytes() / self.capacity

    # ------------------------------------------------------------------ add
    def add(
        self,
        obs: ArrayLike,
        action: ArrayLike,
        reward: ArrayLike,
        terminated: ArrayLike,
        truncated: ArrayLike,
        next_obs: ArrayLike,
        *,
        streams: ArrayLike | None = None,
    ) -> None:
        """Store one vector step (of a vector env that auto-resets in the same step).

        obs/next_obs: uint8 ``[E, stack, *frame_shape]`` or only their newest frames
        ``[E, *frame_shape]`` (numpy or torch); action int ``[E]``; reward float ``[E]``;
        terminated/truncated bool ``[E]``. ``next_obs`` is the TRUE next observation (the
        final one where an episode ended, not the auto-reset one). ``streams``: the streams
        (env ids) the ``E`` rows belong to, each at most once (default: all, in order); remote
        actors send their envs' steps on their own schedule.
        """
        envs = self._envs if streams is None else self._stream_ids(streams)
        n = int(envs.numel())
        obs_frame = self._newest_frame(obs, "obs", n)
        next_frame = self._newest_frame(next_obs, "next_obs", n)
        action_t = self._per_env(action, torch.int64, "action", n)
        reward_t = self._per_env(reward, torch.float32, "reward", n)
        terminated_t = self._per_env(terminated, torch.bool, "terminated", n)
        truncated_t = self._per_env(truncated, torch.bool, "truncated", n)

        written = self._written[envs]
        row = written % self._rows
        row_next = (written + 1) % self._rows
        # Both rows are spare (not live) before this add, so writing every env is safe.
        if self._frames.is_cuda:
            slots = (torch.stack([row, row_next]) * self.num_envs + envs).to(self.device)
            self._frames_flat.index_copy_(0, slots[0], obs_frame)
            self._frames_flat.index_copy_(0, slots[1], next_frame)
        else:
            # One copy per frame: as fast as index_copy_ and, unlike it, free of the thread
            # pool, which stalls for milliseconds when env workers oversubscribe the CPU.
            for i, (env, r) in enumerate(zip(envs.tolist(), row.tolist(), strict=True)):
                self._frames[r, env].copy_(obs_frame[i])
                self._frames[(r + 1) % self._rows, env].copy_(next_frame[i])
        self._action[row, envs] = action_t
        self._reward[row, envs] = reward_t
        self._terminated[row, envs] = terminated_t
        self._truncated[row, envs] = truncated_t
        self._final[row, envs] = False
        ep_pos = self._ep_pos_next[envs]
        self._ep_pos[row, envs] = ep_pos
        self._final[row_next, envs] = True
        self._ep_pos[row_next, envs] = ep_pos + 1

        ended = terminated_t | truncated_t
        self._written[envs] = written + 1 + ended
        self._ep_pos_next[envs] = torch.where(ended, 0, ep_pos + 1)
        self._refresh_validity(written, envs)

    def cut(self, streams: ArrayLike) -> None:
        """End the episodes in flight on ``streams`` as truncations (their emulators were
        lost, e.g. a dead remote actor): the next :meth:`add` there starts a new episode."""
        cut = [j for j in self._stream_ids(streams).tolist() if int(self._ep_pos_next[j]) != 0]
        for j in cut:
            self._cut_stream(j)
        if cut:
            self._revalidate()

    def _stream_ids(self, streams: ArrayLike) -> torch.Tensor:
        ids = torch.as_tensor(streams).to("cpu", torch.int64).reshape(-1)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_envs):
            raise ValueError(f"streams must be in [0, {self.num_envs}), got {ids.tolist()}")
        if ids.unique().numel() != ids.numel():
            raise ValueError(f"streams must not repeat within one add, got {ids.tolist()}")
        return ids

    def _newest_frame(self, x: ArrayLike, name: str, n: int) -> torch.Tensor:
        shape, dtype = tuple(x.shape), x.dtype
        if dtype != (np.uint8 if isinstance(x, np.ndarray) else torch.uint8):
            raise ValueError(f"{name} must hold uint8 frames, got dtype {dtype}")
        if shape == (n, self.stack, *self.frame_shape):
            frame = x[:, -1]
        elif shape == (n, *self.frame_shape):
            frame = x  # newest frames only (or stack=1 observations without a stack axis)
        else:
            raise ValueError(
                f"{name} must have shape {(n, self.stack, *self.frame_shape)} or "
                f"{(n, *self.frame_shape)}, got {shape}"
            )
        if isinstance(frame, np.ndarray):
            if not frame.flags.writeable:  # e.g. shared memory of a vector env
                frame = frame.copy()
            frame = torch.from_numpy(frame)
        return frame.to(self.device, non_blocking=True)

    def _per_env(self, x: ArrayLike | float, dtype: torch.dtype, name: str, n: int) -> torch.Tensor:
        t = torch.as_tensor(x)
        if tuple(t.shape) != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {tuple(t.shape)}")
        return t.to("cpu", dtype)

    def _refresh_validity(self, written_before: torch.Tensor, envs: torch.Tensor) -> None:
        """Re-evaluate the positions whose validity this add can change; keep trees in step."""
        self._refresh(written_before[:, None] + self._window, envs[:, None])

    def _refresh(self, pos: torch.Tensor, env: torch.Tensor) -> None:
        """Re-evaluate the absolute positions ``pos`` of envs ``env`` (broadcastable; no row
        twice) and keep the count and the priority trees in step."""
        valid = self._is_valid(pos, env)
        row = pos % self._rows
        was = self._valid[row, env]
        self._valid[row, env] = valid
        self._num_valid += int(valid.sum()) - int(was.sum())
        if self._tree is not None:
            changed = valid != was
            if bool(changed.any()):
                gained = valid[changed].to(torch.float64)  # new: max priority; lost: absent
                value = gained * self._leaf_value(self._max_priority)
                slots = (row * self.num_envs + env).expand_as(changed)
                self._tree.set(slots[changed], value)

    def extend(
        self,
        obs: ArrayLike,
        action: ArrayLike,
        reward: ArrayLike,
        terminated: ArrayLike,
        truncated: ArrayLike,
        next_obs: ArrayLike,
        *,
        streams: ArrayLike | None = None,
    ) -> None:
        """``T`` vector steps of the same envs at once (a remote actor's batch): exactly what
        ``T`` calls of :meth:`add` store, in one pass. Arguments as for :meth:`add` with a
        leading time axis: obs/next_obs ``[T, E, *frame_shape]`` (newest frames), the rest
        ``[T, E]``; ``next_obs[t]`` must equal ``obs[t + 1]`` where step ``t`` did not end
        its episode. Falls back to ``T`` adds when a stream is too short for the batch.

        Slots: step ``t`` of a stream lands at ``written + t + (episode ends before t)``; an
        episode end spends the slot after it on the final frame, as in :meth:`add`.
        """
        envs = self._envs if streams is None else self._stream_ids(streams)
        n = int(envs.numel())
        act = torch.as_tensor(action)
        if act.dim() != 2 or act.shape[1] != n:
            raise ValueError(f"action must have shape (T, {n}), got {tuple(act.shape)}")
        t_max = int(act.shape[0])
        term = self._per_env(
            torch.as_tensor(terminated).reshape(-1), torch.bool, "terminated", t_max * n
        )
        trunc = self._per_env(
            torch.as_tensor(truncated).reshape(-1), torch.bool, "truncated", t_max * n
        )
        done = (term | trunc).view(t_max, n)
        grow = t_max + done.sum(0)  # slots each stream takes
        if int(grow.max()) + self.n_step + self.stack + 3 > self.capacity_per_env:
            for t in range(t_max):  # the batch would wrap within its own stream
                self.add(
                    obs[t],
                    action[t],
                    reward[t],
                    terminated[t],
                    truncated[t],
                    next_obs[t],
                    streams=envs,
                )
            return
        frames = self._newest_frame(_flat2(obs), "obs", t_max * n)
        next_frames = self._newest_frame(_flat2(next_obs), "next_obs", t_max * n)
        step = torch.arange(t_max)[:, None]
        before = done.long().cumsum(0) - done.long()  # episode ends before step t
        written = self._written[envs]
        pos = written + step + before  # (T, n)
        # the newest episode end before step t (-1: none): ep_pos restarts after it
        last = torch.where(done, step, -1).cummax(0).values
        last_before = torch.cat([torch.full((1, n), -1), last[:-1]])
        ep = torch.where(last_before < 0, self._ep_pos_next[envs] + step, step - last_before - 1)
        row, row_next = pos % self._rows, (pos + 1) % self._rows
        env = envs.expand(t_max, n)
        # next frames first: where no episode ended, the next step's obs frame (the same
        # frame) lands on the same slot afterwards; where one ended, the final slot keeps it
        slots_next = (row_next * self.num_envs + env).reshape(-1).to(self.device)
        self._frames_flat.index_copy_(0, slots_next, next_frames)
        slots = (row * self.num_envs + env).reshape(-1).to(self.device)
        self._frames_flat.index_copy_(0, slots, frames)
        self._final[row_next, env] = True
        self._ep_pos[row_next, env] = ep + 1
        self._action[row, env] = act.to(torch.int64)
        self._reward[row, env] = torch.as_tensor(reward).to("cpu", torch.float32).view(t_max, n)
        self._terminated[row, env] = term.view(t_max, n)
        self._truncated[row, env] = trunc.view(t_max, n)
        self._final[row, env] = False
        self._ep_pos[row, env] = ep
        new_written = written + grow
        self._written[envs] = new_written
        self._ep_pos_next[envs] = torch.where(done[-1], 0, ep[-1] + 1)
        # validity can change for the new slots and the n before them, and at the oldest
        # edge (slots that left the stream, stacks that now reach out of it)
        new = (written - self.n_step)[:, None] + torch.arange(self.n_step + int(grow.max()))
        edge = (new_written - self.capacity_per_env - 2)[:, None] + torch.arange(self.stack + 3)
        keep = new < new_written[:, None]
        self._refresh(new[keep], envs[:, None].expand_as(new)[keep])
        self._refresh(edge, envs[:, None])

    def _is_valid(self, pos: torch.Tensor, env: torch.Tensor) -> torch.Tensor:
        """Sampleability of absolute positions ``pos`` of envs ``env`` (broadcastable)."""
        written = self._written[env]
        oldest = written - self.capacity_per_env
        row = pos % self._rows
        _, alive = self._lookahead(row, env)
        back = self._ep_pos[row, env].clamp(max=self.stack - 1)
        return (
            (pos >= 0)
            & (pos >= oldest)
            & (pos + alive.sum(-1) < written)
            & (pos - back >= oldest)
            & ~self._final[row, env]
        )

    def _lookahead(self, row: torch.Tensor, env: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of the n steps from ``row`` and whether each is inside the episode.

        Step j is alive when no step before it ended the episode; stale rows past the written
        ones can only make ``k`` (the number of alive steps) larger, never valid.
        """
        rows = (row[..., None] + self._steps) % self._rows
        env = env[..., None]
        done = self._terminated[rows, env] | self._truncated[rows, env]
        alive = done.cumsum(-1) - done.long() == 0
        return rows, alive

    # ------------------------------------------------------------------ sample
    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        """A batch on ``device``: obs, action, reward, next_obs, discount, weight, index.

        obs/next_obs uint8 ``[B, stack, *frame_shape]``; action int64; reward float32, the
        n-step discounted sum; discount float32, ``gamma ** k`` for the ``k`` steps summed and 0
        where the episode terminated within them (truncation bootstraps from the true final
        observation); weight float32 importance weights (ones unless prioritized); index int64
        slot ids for :meth:`update_priority`. Sampled with the default torch generator.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self._num_valid == 0:
            raise ValueError("cannot sample: the replay memory holds no sampleable transition yet")
        if self._tree is None:
            index = self._draw_uniform(batch_size)
            weight = torch.ones(batch_size, dtype=torch.float32)
        else:
            index, weight = self._draw_prioritized(batch_size)
        row = index // self.num_envs
        env = index % self.num_envs

        rows, alive = self._lookahead(row, env)
        env_col = env[:, None]
        steps = alive.sum(-1)
        reward = (self._reward[rows, env_col] * self._discounts * alive).sum(-1)
        terminal = (self._terminated[rows, env_col] & alive).any(-1)
        discount = torch.where(terminal, 0.0, self._gamma_pow[steps])

        ep_pos = self._ep_pos[row, env][:, None]
        row_col, steps_col = row[:, None], steps[:, None]
        obs_rows = row_col - torch.minimum(self._back, ep_pos)
        next_rows = row_col + steps_col - torch.minimum(self._back, ep_pos + steps_col)
        flat = (torch.cat([obs_rows, next_rows], 1) % self._rows) * self.num_envs + env_col
        # index_select copies whole frames; advanced indexing of uint8 is ~20x slower on CPU.
        frames = self._frames_flat.index_select(0, flat.view(-1).to(self.device, non_blocking=True))
        frames = frames.view(batch_size, 2 * self.stack, *self.frame_shape)
        on = self.device
        return {
            "obs": frames[:, : self.stack],
            "action": self._action[row, env].to(on),
            "reward": reward.to(on),
            "next_obs": frames[:, self.stack :],
            "discount": discount.to(on),
            "weight": weight.to(on),
            "index": index.to(on),
        }

    def _draw_uniform(self, batch_size: int) -> torch.Tensor:
        valid = self._valid.view(-1)
        fraction = self._num_valid / valid.numel()
        if fraction < 0.25:  # mostly empty: pick among the valid slots directly
            slots = valid.nonzero().squeeze(1)
            return slots[torch.randint(slots.numel(), (batch_size,))]
        parts, need = [], batch_size
        while need > 0:  # rejection sampling; usually one round
            candidates = torch.randint(valid.numel(), (int(need / fraction * 1.25) + 8,))
            accepted = candidates[valid[candidates]][:need]
            parts.append(accepted)
            need -= accepted.numel()
        return torch.cat(parts)

    def _draw_prioritized(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        tree = self._tree
        assert tree is not None
        valid = self._valid.view(-1)
        index = torch.empty(batch_size, dtype=torch.int64)
        todo = torch.arange(batch_size)
        while todo.numel():  # a redraw only follows float rounding at a zero leaf
            mass = (1.0 - torch.rand(todo.numel(), dtype=torch.float64)) * tree.total()
            found = tree.find(mass).clamp(max=valid.numel() - 1)
            index[todo] = found
            todo = todo[~valid[found]]
        weight = (tree.get(index) / tree.min()).pow(-self.beta)
        return index, weight.to(torch.float32)

    # ------------------------------------------------------------------ priorities
    def _leaf_value(self, priority: float) -> float:
        return (priority + self.eps) ** self.alpha

    def update_priority(self, index: ArrayLike, priority: ArrayLike | float) -> None:
        """Set priorities (e.g. |TD error|) of sampled ``index``; no-op unless prioritized.

        Slots that stopped being sampleable since they were sampled are left alone; for a
        repeated index the last priority wins.
        """
        if self._tree is None:
            return
        index_t = torch.as_tensor(index).detach().to("cpu", torch.int64).reshape(-1)
        priority_t = torch.as_tensor(priority).detach().to("cpu", torch.float64).reshape(-1)
        if priority_t.numel() == 1:
            priority_t = priority_t.expand(index_t.shape)
        if priority_t.shape != index_t.shape:
            raise ValueError(
                f"priority must be a number or have index's shape {tuple(index_t.shape)}, "
                f"got {tuple(priority_t.shape)}"
            )
        if index_t.numel() == 0:
            return
        size = self._valid.numel()
        if int(index_t.min()) < 0 or int(index_t.max()) >= size:
            raise ValueError(f"index must be in [0, {size}), got values outside it")
        if not bool(torch.isfinite(priority_t).all()) or bool((priority_t < 0).any()):
            raise ValueError("priority must be finite and >= 0")
        unique, inverse = torch.unique(index_t, return_inverse=True)
        last = torch.zeros(unique.shape, dtype=torch.int64).scatter_reduce_(
            0, inverse, torch.arange(index_t.numel()), "amax"
        )
        index_t, priority_t = unique, priority_t[last]
        live = self._valid.view(-1)[index_t]
        index_t, priority_t = index_t[live], priority_t[live]
        if index_t.numel() == 0:
            return
        self._tree.set(index_t, (priority_t + self.eps) ** self.alpha)
        self._max_priority = max(self._max_priority, float(priority_t.max()))

    # ------------------------------------------------------------------ save / load
    def _config(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "capacity": self.capacity,
            "num_envs": self.num_envs,
            "frame_shape": list(self.frame_shape),
            "stack": self.stack,
            "n_step": self.n_step,
            "gamma": self.gamma,
            "prioritized": self.prioritized,
            "alpha": self.alpha,
            "eps": self.eps,
        }

    def save(self, path: Path) -> None:
        """Write the memory into directory ``path`` (created if missing), fsynced.

        Files: ``replay.json`` (settings), ``frames.u8`` (raw uint8 ``[rows, E, *frame]``),
        ``state.pt`` (tensors only; loads with ``torch.load(weights_only=True)``).
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with open(path / _FRAMES_FILE, "wb") as f:
            for chunk in self._frames.split(self._rows_per_io_chunk()):
                f.write(memoryview(chunk.cpu().numpy().reshape(-1)))
            f.flush()
            os.fsync(f.fileno())
        state: dict[str, Any] = {
            "meta": dict(self._meta),
            "written": self._written,
            "ep_pos_next": self._ep_pos_next,
            "num_valid": self._num_valid,
            "max_priority": self._max_priority,
        }
        if self._tree is not None:
            state["priorities"] = self._tree.leaves().clone()
        with open(path / _STATE_FILE, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        with open(path / _CONFIG_FILE, "w", encoding="utf-8") as f:
            json.dump(self._config(), f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def load(self, path: Path) -> None:
        """Restore a memory written by :meth:`save` into this one.

        With the same layout (capacity, num_envs, prioritized, alpha, eps) the memory is
        restored as saved; otherwise (a run resumed with another ``--num-envs`` or
        ``--replay-size``) each saved stream is transplanted into this memory's streams
        (:meth:`_transplant`), newest data kept where it does not all fit. Either way every
        stream is then cut where its episode was in flight (:meth:`_cut_streams`): a resumed
        run starts new episodes, and no stack or n-step return may run across that seam.
        Raises ValueError naming the file or the setting that does not fit.
        """
        path = Path(path)
        config_file = path / _CONFIG_FILE
        if not config_file.is_file():
            raise FileNotFoundError(f"no saved replay memory at {path} (missing {_CONFIG_FILE})")
        saved = json.loads(config_file.read_text(encoding="utf-8"))
        if saved.get("format") != _FORMAT or saved.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"{config_file} is not a {_FORMAT} version {_FORMAT_VERSION} file "
                f"(format={saved.get('format')!r}, version={saved.get('version')!r})"
            )
        mine = self._config()
        for key in _LOAD_MUST_MATCH:
            if saved.get(key) != mine[key]:
                raise ValueError(
                    f"replay memory at {path} was saved with {key}={saved.get(key)!r}, "
                    f"this memory has {key}={mine[key]!r}"
                )
        if all(saved.get(key) == mine[key] for key in _SAME_LAYOUT):
            self._restore(path)
        else:
            old = ReplayMemory(
                int(saved["capacity"]),
                int(saved["num_envs"]),
                frame_shape=self.frame_shape,
                stack=self.stack,
                n_step=int(saved["n_step"]),
                gamma=float(saved["gamma"]),
                prioritized=bool(saved["prioritized"]),
                alpha=float(saved["alpha"]),
                eps=float(saved["eps"]),
            )
            old._restore(path)
            self._transplant(old)
        self._cut_streams()

    def _restore(self, path: Path) -> None:
        """Byte-for-byte restore of a memory saved with this one's layout."""
        state = torch.load(path / _STATE_FILE, map_location="cpu", weights_only=True)
        for key, value in state["meta"].items():
            target = self._meta[key]
            if value.shape != target.shape or value.dtype != target.dtype:
                raise ValueError(f"{path / _STATE_FILE}: field {key!r} does not match this memory")
            target.copy_(value)
        self._read_frames(path / _FRAMES_FILE)
        self._written = state["written"].clone()
        self._ep_pos_next = state["ep_pos_next"].clone()
        self._num_valid = int(state["num_valid"])
        self._max_priority = float(state["max_priority"])
        if self._tree is not None:
            self._tree.load(state["priorities"])

    def _transplant(self, old: ReplayMemory) -> None:
        """Copy ``old``'s live slots, stream by stream and oldest first, into this memory's
        streams (old stream ``i`` into stream ``i % num_envs``, after what is there). Each
        copied stretch is cut like an episode in flight at both ends: its first ``stack - 1``
        slots become *final* (frames only, never a start: their stacks would reach into the
        stretch before) and its end is cut by :meth:`_cut_stream`."""
        for i in range(old.num_envs):
            written = int(old._written[i])
            first = max(0, written - old.capacity_per_env)
            if written - first < self.stack + 2:
                continue
            if int(old._ep_pos_next[i]) != 0:
                written += 1  # the in-flight episode's newest frame, in the spare slot
            src = torch.arange(first, written) % old._rows
            j = i % self.num_envs
            dst_pos = int(self._written[j]) + torch.arange(written - first)
            keep = dst_pos >= dst_pos[-1] + 1 - self.capacity_per_env  # newest that fit
            src, dst = src[keep], dst_pos[keep] % self._rows
            self._frames[dst, j] = old._frames[src.to(old._frames.device), i].to(self.device)
            for key, column in self._meta.items():
                column[dst, j] = old._meta[key][src, i]
            self._final[dst[: self.stack - 1], j] = True
            self._written[j] = int(dst_pos[-1]) + 1
            if int(old._ep_pos_next[i]) != 0:  # cut where the old stream's episode was
                self._written[j] -= 1
                self._ep_pos_next[j] = int(self._ep_pos[dst[-1], j])
                self._cut_stream(j)
        self._revalidate()

    def _cut_streams(self) -> None:
        for j in range(self.num_envs):
            if int(self._ep_pos_next[j]) != 0:
                self._cut_stream(j)
        self._revalidate()

    def _cut_stream(self, j: int) -> None:
        """End stream ``j``'s episode in flight as a truncation: its newest transition
        bootstraps from the newest frame (kept in the spare slot, now counted, as a final
        slot), and the next :meth:`add` starts a new episode."""
        newest = int(self._written[j]) - 1
        self._truncated[newest % self._rows, j] = True
        spare = (newest + 1) % self._rows
        self._final[spare, j] = True
        self._ep_pos[spare, j] = self._ep_pos_next[j]
        self._written[j] = newest + 2
        self._ep_pos_next[j] = 0

    def _revalidate(self) -> None:
        """Recompute which slots may be sampled (and their priorities) from scratch."""
        env = self._envs[:, None]
        pos = self._written[:, None] - self.capacity_per_env + torch.arange(self.capacity_per_env)
        valid = self._is_valid(pos, env)
        self._valid.zero_()
        self._valid[pos % self._rows, env] = valid
        self._num_valid = int(self._valid.sum())
        if self._tree is not None:
            leaves = self._tree.leaves().clone()
            flat = self._valid.view(-1)
            fresh = flat & (leaves == 0)
            leaves[fresh] = self._leaf_value(self._max_priority)
            leaves[~flat] = 0.0
            self._tree.load(leaves)

    def _rows_per_io_chunk(self) -> int:
        return max(1, _IO_CHUNK_BYTES // (self._frames[0].nbytes or 1))

    def _read_frames(self, file: Path) -> None:
        with open(file, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size != self._frames.nbytes:
                raise ValueError(
                    f"{file} holds {size} bytes, this memory needs {self._frames.nbytes}"
                )
            for chunk in self._frames.split(self._rows_per_io_chunk()):
                host = (
                    chunk if chunk.device.type == "cpu" else torch.empty_like(chunk, device="cpu")
                )
                if f.readinto(host.numpy().reshape(-1).data) != host.nbytes:
                    raise ValueError(f"{file} ended early")
                if host is not chunk:
                    chunk.copy_(host)
