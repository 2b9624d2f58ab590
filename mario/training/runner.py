"""The training loop of every algorithm: collect -> store -> update -> hooks.

:class:`Runner` owns one run: the algorithm (:mod:`mario.algos`), the emulators
(:class:`mario.training.collector.Collector`), the tracker and the hooks
(:mod:`mario.training.hooks`: logs, evaluations, checkpoints, progress). Its loop, in
:meth:`Runner._loop`, reads top to bottom: act and send the next step to the emulators; store
the step just finished and let the hooks run; learn while the emulators work; receive. A stop
signal (SIGINT, SIGTERM: ``docker stop``) finishes the step, saves a checkpoint and returns 0
within seconds.

The loop times its own parts (:attr:`Runner.timers`); ``mario bench train`` reads them.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import shlex
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import numpy as np
import torch
import yaml
from gymnasium.vector import AsyncVectorEnv

from mario import algos
from mario.algos.base import Algorithm, check_finite
from mario.config import ConfigError
from mario.device import resolve_device
from mario.models import net_signature
from mario.storage.checkpoints import (
    STATE_FORMAT,
    CheckpointInfo,
    list_checkpoints,
    mark_best,
    package_versions,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from mario.storage.tracker import Tracker
from mario.training.collector import Collector, EmulatorsLost, EpisodeEnd, LocalCollector
from mario.training.hooks import Hook, Request, default_hooks
from mario.training.preflight import checkpoint_bytes, gib
from mario.training.setup import RunSetup, action_set_size

#: Seconds after the first stop signal in which another one counts as the same stop.
REPEAT_WINDOW_S = 0.5
#: Exit status when training diverged (NaN/inf): nothing was saved over good checkpoints.
EXIT_DIVERGED = 3
#: Exit status when the disk filled up during a save.
EXIT_DISK_FULL = 4
#: Exit status of a run stopped by a second Ctrl-C without saving (the shell's 128 + SIGINT).
EXIT_STOPPED_UNSAVED = 130
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class Diverged(Exception):
    """The loss or the weights became NaN/inf; the message is one line for the user."""


class DiskFull(Exception):
    """A save ran out of disk; the message says what was kept and the space needed."""


class StopNow(BaseException):
    """Ctrl-C pressed again while stopping: leave without saving (the newest checkpoint on
    disk is complete). A BaseException, like KeyboardInterrupt, so no ``except Exception``
    on the way up swallows it."""


@dataclass
class RunStats:
    """Episode statistics of a run. Episodes started at archived states are counted apart:
    the real-start figures (recent returns and x, best x) are what evaluation would see."""

    episodes: int = 0
    archive_episodes: int = 0
    recent_returns: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    recent_x: deque[int] = field(default_factory=lambda: deque(maxlen=100))
    stage_x: dict[str, deque[int]] = field(default_factory=dict)
    """Recent x per stage (several stages at once; not kept across a resume)."""
    best_x: int = 0
    best_metric: float = -float("inf")

    def add(self, e: EpisodeEnd) -> None:
        self.episodes += 1
        if e.start_x is None:
            self.recent_returns.append(e.ret)
            self.recent_x.append(e.x_pos)
            self.best_x = max(self.best_x, e.x_pos)
            if e.stage is not None:
                self.stage_x.setdefault(e.stage, deque(maxlen=100)).append(e.x_pos)
        else:
            self.archive_episodes += 1

    def mean_return(self) -> float | None:
        return float(np.mean(self.recent_returns)) if self.recent_returns else None

    def state_dict(self) -> dict[str, Any]:
        return {
            "recent_returns": list(self.recent_returns),
            "recent_x": list(self.recent_x),
            "best_x": self.best_x,
            "best_metric": self.best_metric,
            "archive_episodes": self.archive_episodes,
        }

    def load_state_dict(self, state: dict[str, Any], episodes: int) -> None:
        self.episodes = episodes
        self.recent_returns.extend(state.get("recent_returns", []))
        self.recent_x.extend(state.get("recent_x", []))
        self.best_x = int(state.get("best_x", 0))
        self.best_metric = float(state.get("best_metric", -float("inf")))
        self.archive_episodes = int(state.get("archive_episodes", 0))


class Timers:
    """Wall-clock seconds and calls per part of the loop, kept by the loop itself."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    @contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[part] = self.seconds.get(part, 0.0) + time.perf_counter() - start
            self.calls[part] = self.calls.get(part, 0) + 1

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


class Runner:
    """One training run (see the module docstring)."""

    def __init__(
        self,
        setup: RunSetup,
        *,
        argv: list[str] | None = None,
        env_factory: Callable[[int], AsyncVectorEnv] | None = None,
        actor_env_factory: Callable[[int, int], Any] | None = None,
        n_actions: int | None = None,
        learn: bool = True,
        random_actions: bool = False,
        hooks: list[Hook] | None = None,
    ) -> None:
        """``env_factory(seed)`` replaces the game's vector env (tests use a toy env with
        ``n_actions`` actions); it must auto-reset in SAME_STEP mode like make_vec_env.
        ``actor_env_factory(num_envs, seed)`` is the same for each remote actor's envs
        (``--ray-address``).
        ``learn=False`` and ``random_actions`` are for benchmarks (acting without learning,
        uniform random actions); ``hooks`` replaces the default ones."""
        cfg = self.cfg = setup.config
        self.setup = setup
        self.env_factory = env_factory
        self.actor_env_factory = actor_env_factory
        self.run_dir = setup.run_dir
        self.device = resolve_device(cfg.run.device)
        self.learning = learn
        self.random_actions = random_actions
        self.stop_requested = False
        self._stop_requested_at = 0.0
        self.timers = Timers()
        self.step = 0
        self.stats = RunStats()
        self.collector_state: dict[str, Any] | None = None
        """What the collector saved in the checkpoint resumed from (the start archive)."""
        self.collector: Collector | None = None
        self.last_saved: CheckpointInfo | None = None
        self.notes = list(setup.notes)

        # The emulator processes need the cores. Torch's CPU thread pool beside them stalls
        # (its threads wait for each other on oversubscribed cores): on the H200 host with 14
        # envs on 16 cores, 16 threads made each replay add take ~20 ms instead of ~0.2 ms.
        cores = len(os.sched_getaffinity(0))
        torch.set_num_threads(max(1, cores - cfg.run.num_envs))
        state = setup.state
        if state is None:
            torch.manual_seed(cfg.run.seed)
            np.random.seed(cfg.run.seed)
        self.n_actions = n_actions or action_set_size(cfg.env.actions)
        self.spec = algos.get(cfg.algo)
        self.algo: Algorithm = self.spec.make(
            cfg.algorithm, cfg.context(self.n_actions, self.device)
        )
        wandb_run_id = None
        if state is not None:
            self._restore(state, setup.checkpoint)
            if setup.fork_of is None:  # a fork is a new run in W&B too
                wandb_run_id = state.get("wandb_run_id")

        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        with open(self.run_dir / "command.txt", "a") as f:
            command = shlex.join(["mario", *(argv if argv is not None else sys.argv[1:])])
            f.write(f"{dt.datetime.now().isoformat(timespec='seconds')}  {command}\n")
        self.tracker = Tracker(
            self.run_dir,
            cfg.to_dict(),
            wandb_mode=setup.wandb_mode,
            run_id=wandb_run_id,
            project=cfg.run.wandb_project,
            run_name=self.run_dir.name,
            start_step=self.step if state is not None else None,
            tensorboard=cfg.run.tensorboard,
        )
        self.notes.extend(self.tracker.notes)  # e.g. W&B unreachable: logging offline
        self.hooks = default_hooks(self) if hooks is None else hooks

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> int:
        """Train to ``total_steps`` or a stop signal; returns the exit status (see
        docs/RELIABILITY.md): 0, 3 (diverged), 4 (disk full), 5 (Ray cluster lost, saved),
        6 (actors keep failing, saved) or 130 (stopped unsaved)."""
        cfg = self.cfg
        for note in self.notes:
            print(note, file=sys.stderr)
        if self.step >= cfg.run.total_steps:
            self._close()
            print(
                f"run already complete: step {self.step} >= total_steps {cfg.run.total_steps} "
                "(raise --total-steps to train on)",
                flush=True,
            )
            return 0
        # Python lets only the main thread set signal handlers; a run in another thread (the
        # Python API from a worker thread) leaves stop signals to the program around it.
        signals = (signal.SIGINT, signal.SIGTERM)
        in_main = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, self._on_signal) for s in signals} if in_main else {}
        try:
            self.collector = self._make_collector(cfg.run.seed + self.step)
            self._loop(self.collector)
            self.collector.sync()
            last = self.last_saved
            if last is None or last.step != self.step:
                last = self.save()
            for hook in self.hooks:
                hook.close(self)
            reason = "stopped by signal" if self.stop_requested else "finished"
            print(f"{reason} at step {self.step}: checkpoint {last.path}", flush=True)
            return 0
        except (Diverged, DiskFull) as error:
            print(f"mario train: error: {error}", file=sys.stderr, flush=True)
            return EXIT_DIVERGED if isinstance(error, Diverged) else EXIT_DISK_FULL
        except EmulatorsLost as lost:  # the learner is intact: keep what it learned
            try:
                saved = f"saved step {self.save().step}"
            except (Diverged, DiskFull) as error:
                saved = f"could not save: {error}"
            print(f"mario train: error: {lost}; {saved}", file=sys.stderr, flush=True)
            return lost.exit_status
        except StopNow:
            newest = list_checkpoints(self.run_dir)
            where = (
                f"the newest checkpoint is step {newest[-1].step} ({newest[-1].path})"
                if newest
                else "no checkpoint was saved"
            )
            print(f"stopped without saving (Ctrl-C twice): {where}", file=sys.stderr, flush=True)
            return EXIT_STOPPED_UNSAVED
        finally:
            self._close()
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _make_collector(self, seed: int) -> Collector:
        """The emulators: processes on this machine, or actors on a Ray cluster (streaming
        batches, or playing rounds of rollouts for an on-policy algorithm)."""
        cfg = self.cfg
        if cfg.distributed:
            from mario.distributed.collector import RayCollector
            from mario.distributed.rollouts import RolloutCollector

            def weights() -> tuple[dict[str, torch.Tensor], int, int]:
                return self.spec.acting_weights(self.algo.net), self.algo.updates, self.step

            on_policy = self.spec.rollout_steps(cfg.algorithm) is not None
            kind = RolloutCollector if on_policy else RayCollector
            return kind(cfg, self.n_actions, weights, seed=seed, env_fn=self.actor_env_factory)
        if self.env_factory is not None:
            envs = self.env_factory(seed)
        else:
            from mario.game.env import make_vec_env

            kwargs = cfg.env.train_kwargs()
            envs = make_vec_env(cfg.run.num_envs, cfg.run.stage_list(), seed=seed, **kwargs)
        return LocalCollector(
            envs,
            archive=cfg.env.archive_share > 0,
            archive_eps=cfg.env.archive_eps,
            stages=cfg.run.stage_list(),
        )

    def _loop(self, collector: Collector) -> None:
        """Act, store (+ hooks), learn, receive, until the total or a stop signal.

        The emulators run step t+1 while the loop stores step t, runs the hooks and learns:
        only acting and receiving keep them waiting. Remote actors act themselves
        (``collector.chooses_actions``): then the loop skips acting, and each receive brings a
        batch of steps of some of the envs (or none yet).
        """
        cfg, algo, timer = self.cfg, self.algo, self.timers
        obs = collector.reset(self.collector_state)
        pending: tuple[list[Any], list[EpisodeEnd]] | None = None  # the steps just finished
        next_sync = self.step + cfg.run.log_every
        while True:
            running = self.step < cfg.run.total_steps and not self.stop_requested
            if running:  # act
                with timer("act"):
                    if collector.chooses_actions:
                        actions = None
                    elif self.random_actions:
                        actions = np.random.randint(self.n_actions, size=cfg.run.num_envs)
                    else:
                        actions = algo.act(obs, self.step, collector.explore_floor())
                with timer("send"):
                    collector.send(obs, actions)
            if pending is not None:  # store, then the hooks (logs, evaluations, checkpoints)
                transitions, ended = pending
                with timer("store"):
                    for transition in transitions:
                        algo.observe(transition, self.step)
                    for episode in ended:
                        self._episode_end(episode)
                with timer("hooks"):
                    self._answer([hook.after_step(self) for hook in self.hooks])
                pending = None
            if not running:
                break
            if self.learning:  # learn while the emulators run
                with timer("learn"):
                    algo.learn(self.step)
            with timer("receive"):  # the emulators' step: waiting for them, then gathering
                obs, transitions, ended = collector.receive()
            pending = (transitions, ended)
            self.step += sum(t.steps for t in transitions)
            if self.step >= next_sync:  # no step is pending here: the processes can answer
                collector.sync()
                next_sync += cfg.run.log_every

    def _answer(self, requests: list[Request | None]) -> None:
        """Do what the hooks asked after a step: one save for all that asked (with the best
        score any gave), and a stop (saved, as a stop signal's) if any asked."""
        asked = [r for r in requests if r is not None]
        if any(r.save for r in asked):
            scores = [r.score for r in asked if r.score is not None]
            self.save(max(scores) if scores else None)
        if any(r.stop for r in asked):
            self.stop_requested = True

    def _episode_end(self, e: EpisodeEnd) -> None:
        self.stats.add(e)
        metrics: dict[str, Any] = {
            "return": e.ret,
            "length": e.length,
            "x_pos": e.x_pos,
            "flag_get": e.flag,
            "stage": e.stage or self.cfg.run.stage,
            "episodes": self.stats.episodes,
        }
        if e.start_x is not None:
            metrics.update(from_archive=True, start_x=e.start_x)
        if e.backward:
            metrics["backward"] = True
        if e.stalled:
            metrics["stalled"] = True
        self.tracker.log(self.step, metrics, kind="episode")

    def _close(self) -> None:
        for hook in self.hooks:
            hook.teardown()
        if self.collector is not None:
            self.collector.close()
            self.collector = None
        self.tracker.close()
        self.setup.release()

    # -- signals -----------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """First SIGINT/SIGTERM: finish the step, save, exit 0. Repeats are expected and
        ignored: ``timeout``, systemd and ``kill -- -PGID`` signal the trainer and then its
        process group (the trainer again), and a terminal's Ctrl-C reaches the group too.
        Only Ctrl-C pressed again, a moment later, stops at once (:class:`StopNow`); a
        supervisor that will not wait sends SIGKILL, which atomic checkpoints survive."""
        now = time.monotonic()
        if not self.stop_requested:
            self.stop_requested = True
            self._stop_requested_at = now
            print(
                f"\nreceived {signal.Signals(signum).name}: saving a checkpoint, then exiting "
                "(Ctrl-C again to stop without saving)",
                file=sys.stderr,
                flush=True,
            )
        elif signum == signal.SIGINT and now - self._stop_requested_at > REPEAT_WINDOW_S:
            for s in (signal.SIGINT, signal.SIGTERM):  # leaving: cleanup is not interrupted
                signal.signal(s, signal.SIG_IGN)
            raise StopNow

    # -- checkpoints -------------------------------------------------------------------------
    def learning_stats(self) -> dict[str, float]:
        """The algorithm's statistics since the last call; :class:`Diverged` on NaN/inf."""
        try:
            return self.algo.stats()
        except FloatingPointError:
            raise self._diverged() from None

    def _diverged(self) -> Diverged:
        newest = list_checkpoints(self.run_dir)
        kept = (
            f"the newest checkpoint, step {newest[-1].step}, is from before"
            if newest
            else "no checkpoint was saved"
        )
        return Diverged(
            f"training diverged at step {self.step}: the loss or the weights became NaN/inf, "
            f"so nothing was saved over the good checkpoints ({kept}). Lower --lr (or "
            "--grad-clip), then resume or start again"
        )

    def _state(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "algo": self.algo.name,
            "net_signature": net_signature(self.algo.net),
            "algorithm": self.algo.state_dict(),
            "counters": {
                "step": self.step,
                "episodes": self.stats.episodes,
                "updates": self.algo.updates,
            },
            "status": self.algo.status(self.step),
            "rng": rng_state(),
            "stats": self.stats.state_dict(),
            # (the key predates other collector state than the start archive)
            "archive": self.collector.state_dict() if self.collector else self.collector_state,
            "config": self.cfg.to_dict(),
            "stage": self.cfg.run.stage,
            "actions": self.cfg.env.actions,
            "wandb_run_id": self.tracker.run_id,
            "versions": package_versions(),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }

    def _restore(self, state: dict[str, Any], info: CheckpointInfo | None) -> None:
        expected = net_signature(self.algo.net)
        if state.get("net_signature") != expected:
            raise ConfigError(
                f"checkpoint network {state.get('net_signature')} does not match the "
                f"configured network {expected}"
            )
        self.algo.load_state_dict(state["algorithm"])
        counters = state["counters"]
        self.step = int(counters["step"])
        set_rng_state(state["rng"])
        self.stats.load_state_dict(state.get("stats", {}), int(counters["episodes"]))
        self.collector_state = state.get("archive")
        if info is not None:
            note = self.algo.load_replay(info.replay_path)
            if note:
                self.notes.append(note)

    def save(self, score: float | None = None) -> CheckpointInfo:
        """Save a checkpoint, unless training diverged (:class:`Diverged`: nothing is written
        over the good ones). A full disk (:class:`DiskFull`) keeps what fits: the checkpoint
        without its large files (the replay memory), else nothing, and ends the run.

        The one best-checkpoint policy: with evaluations during training, the checkpoint of
        the highest evaluation ``score`` (a hook's, :class:`~mario.training.hooks.Request`);
        without them, the highest mean return of the recent training episodes.
        """
        self.check_weights_finite()
        candidate = score if self.cfg.eval.eval_every else self.stats.mean_return()
        try:
            info = self._save(with_files=True)
        except OSError as error:
            if error.errno not in _DISK_FULL:
                raise
            state_bytes, replay_bytes = checkpoint_bytes(self.cfg, self.n_actions)
            newest = list_checkpoints(self.run_dir)
            kept = f"step {newest[-1].step}" if newest else "none"
            try:
                if not replay_bytes:
                    raise
                info = self._save(with_files=False)
            except OSError as again:
                if again.errno not in _DISK_FULL:
                    raise
                raise DiskFull(
                    f"disk full in {self.run_dir}: could not save step {self.step} (a checkpoint "
                    f"needs about {gib(state_bytes + replay_bytes)}); the newest checkpoint on "
                    f"disk is {kept}. Free space, then resume"
                ) from None
            raise DiskFull(
                f"disk full in {self.run_dir}: saved step {self.step} without its replay memory "
                f"(which needs about {gib(replay_bytes)} more). Free space, then resume: the "
                "replay memory refills"
            ) from None
        if candidate is not None and candidate > self.stats.best_metric:
            self.stats.best_metric = candidate
            mark_best(self.run_dir, info, candidate)
        self.last_saved = info
        return info

    def check_weights_finite(self) -> None:
        """Raise :class:`Diverged` if the weights hold NaN/inf (keeps pending statistics)."""
        try:
            check_finite(self.algo.net, [])
        except FloatingPointError:
            raise self._diverged() from None

    def _save(self, *, with_files: bool) -> CheckpointInfo:
        return save_checkpoint(
            self.run_dir,
            self.step,
            self._state(),
            write_replay=self.algo.replay_writer() if with_files else None,
            keep_last=self.cfg.run.keep_checkpoints,
            meta={"config": self.cfg.to_dict()},  # read without torch by a restart
        )
