"""One Double-DQN gradient step as fast as the device allows: Adam, gradient clipping, the
target head's sync, bf16 autocast, ``torch.compile`` or a CUDA graph of the whole update.

The math (the target and the loss) is :func:`mario.algos.dqn.algorithm.dqn_loss`, which the
learner is given: this module is only the machinery around it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal, cast

import torch

from mario.models import MarioNet

TargetSync = Literal["hard", "soft"]
#: Keys a learner batch must hold; ``weight`` (importance weights) is optional.
BATCH_KEYS: tuple[str, ...] = ("obs", "action", "reward", "discount", "next_obs")
#: What a CUDA-graphed update reads from a batch (``weight`` defaults to ones).
GRAPH_INPUTS: tuple[str, ...] = (*BATCH_KEYS, "weight")
#: Eager updates (on a side stream) before the update is captured in a CUDA graph.
GRAPH_WARMUP = 3
#: ``loss_fn(batch, net, huber_delta=...) -> (loss, {"td_abs": (N,), "q_mean": ()})``.
LossFn = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]


def column(value: torch.Tensor, key: str, n: int) -> torch.Tensor:
    """A batch entry as a (N,) tensor: replay buffers often store scalars as (N, 1)."""
    if value.numel() != n:
        raise ValueError(
            f"batch[{key!r}] must hold {n} values (one per obs), got shape {tuple(value.shape)}"
        )
    return value.reshape(n)


# --------------------------------------------------------------------------- learner


class Learner:
    """Owns the optimiser (Adam) and performs one Double-DQN update per :meth:`update` call:
    ``loss_fn`` (:func:`mario.algos.dqn.algorithm.dqn_loss`) on a batch, backward, clip, step.

    ``target_sync="hard"`` copies online -> target every ``target_update_every`` updates;
    ``"soft"`` Polyak-averages with ``tau`` after every update. ``amp`` (bfloat16 autocast),
    ``compile`` (``torch.compile``) and ``cuda_graph`` take effect only on CUDA; on other
    devices they are ignored, and :attr:`amp` / :attr:`compiled` / :attr:`cuda_graph` say what
    is actually in use.

    ``cuda_graph``: after :data:`GRAPH_WARMUP` eager updates (on a side stream, as CUDA graph
    capture requires), the whole update (forward passes, loss, backward, clipping, fused Adam
    step) is captured once and then replayed as a single launch on fixed input buffers the
    batch is copied into. On the H200 host the eager update was bound by ~100 kernel launches
    from a slow CPU (~4-5 ms whatever the batch size; docs/BENCHMARKS.md). Not combined with
    ``compile`` (its ``reduce-overhead`` mode is the same idea): ``compile`` wins.
    """

    def __init__(
        self,
        net: MarioNet,
        lr: float = 1e-4,
        *,
        loss_fn: LossFn,
        adam_eps: float = 1.5e-4,
        grad_clip: float | None = 10.0,
        huber_delta: float = 1.0,
        target_sync: TargetSync = "hard",
        target_update_every: int = 10_000,
        tau: float = 0.005,
        amp: bool = False,
        compile: bool = False,
        cuda_graph: bool = False,
    ) -> None:
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        if not adam_eps > 0:
            raise ValueError(f"adam_eps must be > 0, got {adam_eps!r}")
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or None (no clipping), got {grad_clip!r}")
        if huber_delta <= 0:
            raise ValueError(f"huber_delta must be > 0, got {huber_delta!r}")
        if target_sync not in ("hard", "soft"):
            raise ValueError(f"target_sync must be one of ('hard', 'soft'), got {target_sync!r}")
        if (
            isinstance(target_update_every, bool)
            or not isinstance(target_update_every, int)
            or (target_update_every < 1)
        ):
            raise ValueError(
                f"target_update_every must be an int >= 1, got {target_update_every!r}"
            )
        if not 0.0 < tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {tau!r}")
        self.net = net
        self.loss_fn = loss_fn
        self.grad_clip = grad_clip
        self.huber_delta = huber_delta
        self.target_sync = target_sync
        self.target_update_every = target_update_every
        self.tau = tau
        on_cuda = net.device.type == "cuda"
        self.amp = bool(amp) and on_cuda
        self.compiled = bool(compile) and on_cuda
        self.cuda_graph = bool(cuda_graph) and on_cuda and not self.compiled
        self._params = list(net.online.parameters())
        # The fused kernel is one pass over all parameters: ~100x faster than the default
        # on CPU here and the fastest on CUDA. ``capturable`` keeps Adam's step count on the
        # device, which graph capture needs.
        fused = net.device.type in ("cuda", "cpu")
        self.optimizer = torch.optim.Adam(
            self._params, lr=lr, eps=adam_eps, fused=fused, capturable=self.cuda_graph
        )
        # The compiled wrapper shares parameters with ``net``; the target updates use ``net``.
        self._loss_net = cast(MarioNet, torch.compile(net)) if self.compiled else net
        self.updates = 0
        self.target_syncs = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_in: dict[str, torch.Tensor] = {}
        self._graph_out: tuple[torch.Tensor, torch.Tensor] | None = None
        self._graph_warm = 0

    def update(self, batch: Mapping[str, Any], *, sync: bool = True) -> dict[str, Any]:
        """One gradient step on ``batch`` (see ``loss_fn``), then the target update.

        Returns ``stats``, a detached (3,) tensor ``[loss, q_mean, grad_norm]`` (grad norm
        before clipping) on the net's device, ``td_abs`` (N,) likewise, and ``target_synced``
        (whether a hard sync happened in this update). With ``sync`` (the default) also
        ``loss``, ``q_mean`` and ``grad_norm`` as floats, at the cost of one wait for the
        device; a training loop on a GPU passes ``sync=False`` and reads ``stats`` only when
        it logs, so updates queue up on the device.
        """
        if self.cuda_graph:
            stats, td_abs = self._graph_step(batch)
        else:
            stats, td_abs = self._step(batch)
        self.updates += 1

        synced = False
        if self.target_sync == "soft":
            self.net.soft_update(self.tau)
        elif self.updates % self.target_update_every == 0:
            self.net.sync_target()
            self.target_syncs += 1
            synced = True

        names = ("loss", "q_mean", "grad_norm")
        floats = dict(zip(names, stats.tolist(), strict=True)) if sync else {}
        return {
            **floats,
            "stats": stats,
            "td_abs": td_abs,
            "target_synced": synced,
        }

    def _step(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The gradient step itself: ``(stats [loss, q_mean, grad_norm], td_abs)``, on the
        device, without a host sync (so it can also be captured in a CUDA graph)."""
        autocast = (
            # autocast's weight-cast cache must be off while a graph is captured
            torch.autocast(device_type="cuda", dtype=torch.bfloat16, cache_enabled=False)
            if self.amp
            else contextlib.nullcontext()
        )
        with autocast:
            loss, info = self.loss_fn(batch, self._loss_net, huber_delta=self.huber_delta)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = self.grad_clip if self.grad_clip is not None else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self._params, max_norm, foreach=True)
        self.optimizer.step()
        stats = torch.stack([loss.detach().float(), info["q_mean"], grad_norm.float()])
        return stats, info["td_abs"]

    def _graph_step(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_step` through a CUDA graph: eager warm-up on a side stream, one capture,
        then copy the batch into the graph's inputs and replay it."""
        if self._graph is not None and batch["obs"].shape[0] != self._graph_in["obs"].shape[0]:
            return self._step(batch)  # another batch size than the captured one: eager
        if self._graph is None and self._graph_warm < GRAPH_WARMUP:
            side = torch.cuda.Stream(self.net.device)
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self._step(batch)
            torch.cuda.current_stream().wait_stream(side)
            self._graph_warm += 1
            return out
        if self._graph is None:
            self._graph_in = {key: self._graph_input(batch, key).clone() for key in GRAPH_INPUTS}
            self.optimizer.zero_grad(set_to_none=True)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._graph_out = self._step(self._graph_in)
            self._graph = graph
        for key, static in self._graph_in.items():
            static.copy_(self._graph_input(batch, key), non_blocking=True)
        self._graph.replay()
        assert self._graph_out is not None
        # the graph overwrites its outputs on the next replay: hand out copies
        return self._graph_out[0].clone(), self._graph_out[1].clone()

    def set_lr(self, lr: float) -> None:
        """The learning rate of the next updates (a schedule's). A CUDA graph replays the rate
        it was captured with unless it reads it from memory: there it is a tensor on the
        device, changed in place, and made one before the first capture (a learner's state
        loaded from a checkpoint is captured again)."""
        for group in self.optimizer.param_groups:
            if not self.cuda_graph:
                group["lr"] = lr
            elif isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            elif self._graph is not None:
                raise RuntimeError("set_lr: the graph was captured with a fixed rate")
            else:
                group["lr"] = torch.tensor(lr, device=self.net.device)

    def reset_optimizer(self) -> None:
        """Adam's moments and step counts start again (after the weights they belong to were
        reset); a CUDA graph holds the old state tensors and is captured again."""
        self.optimizer.state.clear()
        self._graph, self._graph_out, self._graph_in, self._graph_warm = None, None, {}, 0

    def state_dict(self) -> dict[str, Any]:
        """Optimiser state and counters; loadable with ``torch.load(weights_only=True)``."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
            "target_syncs": self.target_syncs,
        }

    def _graph_input(self, batch: Mapping[str, Any], key: str) -> torch.Tensor:
        """``batch[key]`` as the graph's input buffer for ``key`` holds it (shape, dtype,
        device); a missing ``weight`` is all ones."""
        n = batch["obs"].shape[0]
        device = self.net.device
        value = batch.get("weight", None) if key == "weight" else batch[key]
        if key in ("obs", "next_obs"):
            return value.to(device, non_blocking=True)
        if value is None:
            return torch.ones(n, device=device)
        dtype = torch.int64 if key == "action" else torch.float32
        return column(value, key, n).to(device, dtype, non_blocking=True)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = [k for k in ("optimizer", "updates", "target_syncs") if k not in state]
        if missing:
            raise ValueError(f"learner state is missing {missing}")
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the saved groups carry the saver's flag
            group["capturable"] = self.cuda_graph
        # the optimizer's state tensors are new: capture again (after a fresh warm-up)
        self._graph, self._graph_out, self._graph_in, self._graph_warm = None, None, {}, 0
        self.updates = int(state["updates"])
        self.target_syncs = int(state["target_syncs"])
