"""The Double-DQN training loop: act, store, learn, sync, log, checkpoint — top to bottom.

``prepare_run`` does everything that can fail because of the user's input (config, resume
checkpoint, run folder) before any training starts; ``Trainer.run`` is the loop. A stop
signal (SIGINT, SIGTERM: ``docker stop``) finishes the current step, saves a checkpoint and
returns 0 within seconds.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import os
import shlex
import signal
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import numpy as np
import torch
import yaml
from gymnasium.vector import VectorEnv

from mario.archive import merge_states
from mario.checkpoint import (
    CheckpointError,
    CheckpointInfo,
    check_writable,
    list_checkpoints,
    load_checkpoint,
    mark_best,
    package_versions,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from mario.config import ConfigError, TrainConfig, build_config, check_resumable
from mario.dqn import EpsilonSchedule, Learner
from mario.env import action_set, make_vec_env
from mario.net import MarioNet, net_signature, resolve_device
from mario.policy import Policy
from mario.preflight import check_resources, checkpoint_bytes, gib
from mario.replay import ReplayMemory
from mario.run_folder import CHECKPOINTS, MANIFEST, STEP_DIR, newest_run
from mario.tracking import Tracker, resolve_wandb_mode

DEFAULT_ROOT = Path("checkpoints")
STATE_FORMAT = 1
#: Seconds after the first stop signal in which another one counts as the same stop.
REPEAT_WINDOW_S = 0.5
#: Exit status of a run stopped by a second Ctrl-C without saving (the shell's 128 + SIGINT).
EXIT_STOPPED_UNSAVED = 130


#: Exit status when training diverged (NaN/inf): nothing was saved over good checkpoints.
EXIT_DIVERGED = 3
#: Exit status when the disk filled up during a save.
EXIT_DISK_FULL = 4
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
class RunSetup:
    """A validated run, ready to train: config, folder, and the state to resume (if any)."""

    config: TrainConfig
    run_dir: Path
    state: dict[str, Any] | None = None
    checkpoint: CheckpointInfo | None = None
    notes: list[str] = field(default_factory=list)
    lock: TextIO | None = None
    fork_of: CheckpointInfo | None = None
    """The checkpoint a forked run started from (a new folder and W&B run); None otherwise."""
    wandb_mode: str = "disabled"
    """``online``, ``offline`` or ``disabled``: ``config.wandb_mode`` resolved."""

    def release(self) -> None:
        """Let another trainer use the run folder."""
        if self.lock is not None:
            self.lock.close()
            self.lock = None


def lock_run_dir(run_dir: Path) -> TextIO:
    """Hold ``RUN/.lock`` for this process's lifetime: one trainer per run folder.

    ``flock`` is released by the kernel when the process dies (even by ``kill -9``), so a
    stale lock never blocks a resume.
    """
    handle = open(run_dir / ".lock", "a+")  # noqa: SIM115 - held until the process exits
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "?"
        handle.close()
        raise ConfigError(
            f"run folder {run_dir} is in use by another trainer (pid {owner}); "
            "stop it first or choose another --run-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def prepare_run(
    overrides: dict[str, Any],
    *,
    yaml_values: dict[str, Any] | None = None,
    resume: str | None = None,
) -> RunSetup:
    """Resolve the config and the run folder, load the checkpoint to resume from, and check
    that the machine can hold the run; nothing is written but the folder and its lock.

    ``resume``: ``None`` (a new run), ``"auto"`` (the run in ``--run-dir``, else the newest
    run under ``checkpoints/``; a new run when there is none), or a run folder / checkpoint.
    Values from the checkpoint's config are the base; ``yaml_values`` and ``overrides``
    (only what the user gave explicitly) replace them.

    Run folders are never mixed: a new run refuses a folder that holds checkpoints, and
    resuming a checkpoint that is not its run's newest (which would abandon the newer ones),
    or any checkpoint into another ``--run-dir``, *forks*: the run continues from it in a
    new folder, with a new W&B run. Raises ConfigError / CheckpointError.
    """
    notes: list[str] = []
    yaml_values = yaml_values or {}
    given = overrides.get("run_dir") or yaml_values.get("run_dir")
    state, info = _load_resume(resume, given, notes)
    fork_of: CheckpointInfo | None = None
    if state is not None and info is not None:
        saved = dict(state["config"])
        config = build_config(saved, **{**yaml_values, **overrides})
        check_resumable(saved, config, info.path)
        if config.stage != saved["stage"]:
            notes.append(f"continuing training on stage {config.stage} (was {saved['stage']})")
        run_dir = info.run_dir
        if given and Path(given).resolve() != run_dir.resolve():
            fork_of, run_dir = info, Path(given)
        elif resume not in (None, "auto") and _is_checkpoint(Path(resume)):
            newest = list_checkpoints(run_dir, verify=True)
            if newest and newest[-1].step > info.step:
                raise ConfigError(
                    f"checkpoint {info.path} (step {info.step}) is not the newest of its run "
                    f"(step {newest[-1].step}): continuing it in {run_dir} would abandon the "
                    "newer ones. Continue it in a new run folder with --run-dir NEW, or the "
                    f"newest with --resume {run_dir}"
                )
        if fork_of is None:
            notes.append(f"resuming {run_dir} from step {state['counters']['step']}")
        else:
            notes.append(f"forking {info.path} (step {info.step}) into the new run {run_dir}")
    else:
        config = build_config(yaml_values, **overrides)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path(given) if given else DEFAULT_ROOT / f"{config.stage}-{stamp}"
    if (state is None or fork_of is not None) and (held := list_checkpoints(run_dir)):
        raise ConfigError(
            f"run folder {run_dir} already holds a run (newest checkpoint: step "
            f"{held[-1].step}): continue it with --resume {run_dir}, or start a new run in "
            "another --run-dir"
        )
    config.run_dir = str(run_dir)
    if config.burn_in >= config.total_steps:
        notes.append(
            f"warning: burn_in ({config.burn_in}) >= total_steps ({config.total_steps}): this "
            "run only collects random play and never learns; lower --burn-in"
        )
    device = resolve_device(config.device)  # fail before anything is created
    try:
        check_writable(run_dir)
        check_writable(run_dir / CHECKPOINTS)
    except CheckpointError as error:
        raise ConfigError(str(error)) from None
    check_resources(config, run_dir, device, len(action_set(config.actions)))
    wandb_mode, message = resolve_wandb_mode(config.wandb_mode, run_dir)  # online needs a key
    if message:
        notes.append(message)
    lock = lock_run_dir(run_dir)
    return RunSetup(config, run_dir, state, info, notes, lock, fork_of, wandb_mode)


def _is_checkpoint(path: Path) -> bool:
    """Whether ``path`` names one checkpoint (its folder or state.pt), not a run folder."""
    return path.is_file() or (path / MANIFEST).exists() or bool(STEP_DIR.match(path.name))


def _load_resume(
    resume: str | None, given: str | None, notes: list[str]
) -> tuple[dict[str, Any] | None, CheckpointInfo | None]:
    """The state and checkpoint ``--resume`` names (None, None: a new run)."""
    if resume is None:
        return None, None
    if resume == "auto":
        target = Path(given) if given else newest_run(DEFAULT_ROOT)
        if target is None or not list_checkpoints(target):
            notes.append("nothing to resume: starting a new run")
            return None, None
    else:
        target = Path(resume)
        if not target.exists():
            raise CheckpointError(f"{resume}: no such run folder or checkpoint")
    state, info, warnings = load_checkpoint(target, fallback=True)
    notes.extend(f"warning: {w}" for w in warnings)
    return state, info


class Trainer:
    """Owns the envs, network, learner, replay and tracker of one run."""

    def __init__(
        self,
        setup: RunSetup,
        *,
        argv: list[str] | None = None,
        env_factory: Callable[[int], VectorEnv] | None = None,
        n_actions: int | None = None,
    ) -> None:
        """``env_factory(seed)`` replaces the game's vector env (tests use a toy env with
        ``n_actions`` actions); it must auto-reset in SAME_STEP mode like make_vec_env."""
        cfg = self.cfg = setup.config
        self.setup = setup
        self.env_factory = env_factory
        self.run_dir = setup.run_dir
        self.device = resolve_device(cfg.device)
        state = setup.state
        self.stop_requested = False
        self._stop_requested_at = 0.0
        self.best_metric = -float("inf")

        # The emulator processes need the cores. Torch's CPU thread pool beside them stalls
        # (its threads wait for each other on oversubscribed cores): on the H200 host with 14
        # envs on 16 cores, 16 threads made each replay add take ~20 ms instead of ~0.2 ms.
        cores = len(os.sched_getaffinity(0))
        torch.set_num_threads(max(1, cores - cfg.num_envs))
        if state is None:
            torch.manual_seed(cfg.seed)
            np.random.seed(cfg.seed)
        n_actions = n_actions or len(action_set(cfg.actions))
        self.net = MarioNet(n_actions, cfg.stack, dueling=cfg.dueling).to(self.device)
        self.learner = Learner(
            self.net,
            cfg.lr,
            grad_clip=cfg.grad_clip,
            target_sync=cfg.target_sync,
            target_update_every=cfg.target_update_every,
            tau=cfg.tau,
            amp=cfg.amp,
            compile=cfg.compile,
            cuda_graph=cfg.cuda_graph,
        )
        self.replay = ReplayMemory(
            cfg.replay_size,
            cfg.num_envs,
            frame_shape=(cfg.resize, cfg.resize),
            stack=cfg.stack,
            n_step=cfg.n_step,
            gamma=cfg.gamma,
            device=self.device,
            prioritized=cfg.prioritized,
        )
        self.schedule = EpsilonSchedule(
            cfg.eps_start, cfg.eps_end, cfg.eps_decay_steps, kind=cfg.eps_schedule
        )
        self.policy = Policy(
            self.net,
            n_actions,
            seed=cfg.seed,
            exploration=cfg.exploration,
            temperature=cfg.temperature,
        )
        self.step = 0
        self.episodes = 0
        self.archive_state: dict[str, Any] | None = None  # merged start archive (archive.py)
        self.archive_episodes = 0  # episodes started from it
        self.rebuild_frames = 0  # emulator frames spent replaying archived states
        self._log_mark = (0, 0, 0, 0)  # episodes, archive episodes, rebuild frames, step
        self.recent_returns: deque[float] = deque(maxlen=100)
        self.recent_x: deque[int] = deque(maxlen=100)
        self.best_x = 0
        self.notes = list(setup.notes)
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
            project=cfg.wandb_project,
            run_name=self.run_dir.name,
            start_step=self.step if state is not None else None,
        )
        self.notes.extend(self.tracker.notes)  # e.g. W&B unreachable: logging offline

    # -- checkpoints -----------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "net": self.net.state_dict(),
            "net_signature": net_signature(self.net),
            "learner": self.learner.state_dict(),
            "counters": {
                "step": self.step,
                "episodes": self.episodes,
                "updates": self.learner.updates,
            },
            "exploration": {
                "kind": self.cfg.exploration,
                "epsilon": self.epsilon,
                "schedule": self.cfg.eps_schedule,
            },
            "rng": rng_state(),
            "policy_rng": self.policy.generator.get_state(),
            "stats": {
                "recent_returns": list(self.recent_returns),
                "recent_x": list(self.recent_x),
                "best_x": self.best_x,
                "best_metric": self.best_metric,
            },
            "archive": self.archive_state,
            "config": self.cfg.to_dict(),
            "stage": self.cfg.stage,
            "actions": self.cfg.actions,
            "wandb_run_id": self.tracker.run_id,
            "versions": package_versions(),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }

    def _restore(self, state: dict[str, Any], info: CheckpointInfo | None) -> None:
        expected = net_signature(self.net)
        if state.get("net_signature") != expected:
            raise ConfigError(
                f"checkpoint network {state.get('net_signature')} does not match the "
                f"configured network {expected}"
            )
        self.net.load_state_dict(state["net"])
        self.learner.load_state_dict(state["learner"])
        counters = state["counters"]
        self.step, self.episodes = int(counters["step"]), int(counters["episodes"])
        set_rng_state(state["rng"])
        self.policy.generator.set_state(state["policy_rng"])
        stats = state.get("stats", {})
        self.recent_returns.extend(stats.get("recent_returns", []))
        self.recent_x.extend(stats.get("recent_x", []))
        self.best_x = int(stats.get("best_x", 0))
        self.archive_state = state.get("archive")
        self.best_metric = float(stats.get("best_metric", -float("inf")))
        replay_dir = info.replay_path if info is not None else None
        if replay_dir is not None and replay_dir.is_dir():
            self.replay.load(replay_dir)
            self.notes.append(f"replay memory restored: {len(self.replay)} transitions")
        else:
            self.notes.append("no saved replay memory: refilling it from scratch")

    def save(self) -> CheckpointInfo:
        """Save a checkpoint, unless training diverged (:class:`Diverged`: nothing is written
        over the good ones). A full disk (:class:`DiskFull`) keeps what fits: the checkpoint
        without its replay memory, else nothing, and ends the run."""
        self._check_finite()
        metric = float(np.mean(self.recent_returns)) if self.recent_returns else -float("inf")
        is_best = not self.cfg.eval_every and metric > self.best_metric
        try:
            info = self._save(with_replay=self.cfg.save_replay)
        except OSError as error:
            if error.errno not in _DISK_FULL:
                raise
            state_bytes, replay_bytes = checkpoint_bytes(self.cfg, self.net.n_actions)
            newest = list_checkpoints(self.run_dir)
            kept = f"step {newest[-1].step}" if newest else "none"
            try:
                if not self.cfg.save_replay:
                    raise
                info = self._save(with_replay=False)
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
        if is_best:
            self.best_metric = metric
            mark_best(self.run_dir, info, metric)
        return info

    def _save(self, *, with_replay: bool) -> CheckpointInfo:
        return save_checkpoint(
            self.run_dir,
            self.step,
            self._state(),
            write_replay=self.replay.save if with_replay else None,
            keep_last=self.cfg.keep_checkpoints,
            meta={"config": self.cfg.to_dict()},  # read without torch by a restart
        )

    def _check_finite(self, stats: list[torch.Tensor] | None = None) -> None:
        """Raise :class:`Diverged` if the weights (or the given update stats) hold NaN/inf:
        one device sync, at logs and before every save."""
        params = [p.detach() for p in self.net.online.parameters()]
        finite = torch.stack([torch.isfinite(p).all() for p in params]).all()
        if stats:
            finite = finite & torch.isfinite(torch.stack(stats)).all()
        if not bool(finite):
            newest = list_checkpoints(self.run_dir)
            kept = (
                f"the newest checkpoint, step {newest[-1].step}, is from before"
                if newest
                else "no checkpoint was saved"
            )
            raise Diverged(
                f"training diverged at step {self.step}: the loss or the weights became "
                f"NaN/inf, so nothing was saved over the good checkpoints ({kept}). Lower "
                "--lr (or --grad-clip), then resume or start again"
            )

    # -- signals ---------------------------------------------------------------------------
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

    @property
    def epsilon(self) -> float:
        """Exploration rate now: 1 during the random burn-in, then the schedule."""
        return 1.0 if self.step < self.cfg.burn_in else self.schedule.value(self.step)

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> int:
        cfg = self.cfg
        for note in self.notes:
            print(note, file=sys.stderr)
        if self.step >= cfg.total_steps:
            self.tracker.close()
            self.setup.release()
            print(
                f"run already complete: step {self.step} >= total_steps {cfg.total_steps} "
                "(raise --total-steps to train on)",
                flush=True,
            )
            return 0
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        self._log_mark = (self.episodes, self.archive_episodes, self.rebuild_frames, self.step)
        envs: VectorEnv | None = None
        progress = _Progress(cfg.total_steps, self.step)
        try:
            seed = cfg.seed + self.step
            if self.env_factory is not None:
                envs = self.env_factory(seed)
            else:
                envs = make_vec_env(cfg.num_envs, cfg.stage, seed=seed, **cfg.train_env_kwargs())
            if cfg.archive_share > 0 and self.archive_state is not None:
                envs.call("load_archive", self.archive_state, True)  # resume: counts too
            last = self._loop(envs, progress)
            if cfg.archive_share > 0:
                self._sync_archive(envs)
            if last is None or last.step != self.step:
                last = self.save()
            self.tracker.plot()
            reason = "stopped by signal" if self.stop_requested else "finished"
            progress.close()
            print(f"{reason} at step {self.step}: checkpoint {last.path}", flush=True)
            return 0
        except (Diverged, DiskFull) as error:
            progress.close()
            print(f"mario train: error: {error}", file=sys.stderr, flush=True)
            return EXIT_DIVERGED if isinstance(error, Diverged) else EXIT_DISK_FULL
        except StopNow:
            newest = list_checkpoints(self.run_dir)
            where = (
                f"the newest checkpoint is step {newest[-1].step} ({newest[-1].path})"
                if newest
                else "no checkpoint was saved"
            )
            progress.close()
            print(f"stopped without saving (Ctrl-C twice): {where}", file=sys.stderr, flush=True)
            return EXIT_STOPPED_UNSAVED
        finally:
            progress.close()
            if envs is not None:
                with warnings.catch_warnings():  # "close while waiting for step": expected here
                    warnings.simplefilter("ignore")
                    envs.close()
            self.tracker.close()
            self.setup.release()
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _loop(self, envs: VectorEnv, progress: _Progress) -> CheckpointInfo | None:
        """Act, store, log/evaluate/checkpoint, learn, until the total or a stop signal.
        Returns the last checkpoint it saved (None if none)."""
        cfg = self.cfg
        obs, _ = envs.reset()
        returns = np.zeros(cfg.num_envs)
        lengths = np.zeros(cfg.num_envs, dtype=np.int64)
        next_log = self.step + cfg.log_every
        next_ckpt = self.step + cfg.checkpoint_every
        next_eval = self.step + cfg.eval_every if cfg.eval_every else None
        clock, clock_step = time.perf_counter(), self.step
        stats: list[torch.Tensor] = []  # [loss, q_mean, grad_norm] per update, on device
        last: CheckpointInfo | None = None  # not saved twice for one step
        # Act first, then store the previous step, log and learn while the emulators run
        # the next one: only acting and gathering results keep them waiting.
        pending: tuple[Any, ...] | None = None  # the step just finished, not yet stored
        while True:
            running = self.step < cfg.total_steps and not self.stop_requested
            if running:  # act
                if self.step < cfg.burn_in:
                    actions = np.random.randint(envs.single_action_space.n, size=cfg.num_envs)
                else:
                    actions, _ = self.policy.act(obs, self.epsilon)
                envs.step_async(actions)
            if pending is not None:
                self._store(*pending, returns, lengths)
                pending = None
                progress.update(self.step, self.epsilon, self.recent_returns, self.best_x)
                # log, evaluate, checkpoint
                if self.step >= next_log:
                    now = time.perf_counter()
                    self._log_train(stats, (self.step - clock_step) / (now - clock))
                    clock, clock_step, stats = now, self.step, []
                    next_log += cfg.log_every
                if next_eval is not None and self.step >= next_eval:
                    last = self._evaluate()  # saves the checkpoint it scores
                    next_eval += cfg.eval_every
                if self.step >= next_ckpt:
                    if last is None or last.step != self.step:
                        last = self.save()
                    self.tracker.plot()  # ~2 s: with checkpoints, not with every log
                    next_ckpt += cfg.checkpoint_every
            if not running:
                break
            # learn while the emulators run
            due = int(max(0, self.step - cfg.burn_in) * cfg.replay_ratio)
            while self.learner.updates < due and len(self.replay) >= cfg.batch_size:
                batch = self.replay.sample(cfg.batch_size)
                out = self.learner.update(batch, sync=False)  # no wait for the GPU
                if cfg.prioritized:
                    self.replay.update_priority(batch["index"], out["td_abs"])
                stats.append(out["stats"])
            next_obs, reward, terminated, truncated, info = envs.step_wait()
            pending = (obs, actions, next_obs, reward, terminated, truncated, info)
            obs = next_obs
            self.step += cfg.num_envs
            due = self.step >= min(next_log, next_ckpt, next_eval or next_log)
            if cfg.archive_share > 0 and due:
                self._sync_archive(envs)  # no step is pending here: the workers can answer
        return last

    def _sync_archive(self, envs: VectorEnv) -> None:
        """Merge the workers' start archives, hand every worker the merged cells, and keep
        the merged archive for the next checkpoint and the metrics."""
        merged = merge_states(list(envs.call("archive_state")))
        envs.call("load_archive", merged, False)
        self.archive_state = merged

    def _store(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        next_obs: np.ndarray,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        info: dict[str, Any],
        returns: np.ndarray,
        lengths: np.ndarray,
    ) -> None:
        """Store one vector step (the true next observation where an episode ended) and
        close the episodes it ended; ``returns`` and ``lengths`` are updated in place."""
        done = terminated | truncated
        true_next = next_obs
        if done.any():
            true_next = next_obs.copy()
            for i in np.flatnonzero(done):
                true_next[i] = info["final_obs"][i]
        self.replay.add(obs, actions, reward, terminated, truncated, true_next)
        returns += reward
        lengths += 1
        if "rebuild_frames" in info:  # per process, cumulative (archive starts)
            self.rebuild_frames = int(np.sum(info["rebuild_frames"]))
        for i in np.flatnonzero(done):
            final = info["final_info"]
            self._episode_end(
                float(returns[i]),
                int(lengths[i]),
                int(final["x_pos"][i]),
                bool(final["flag_get"][i]),
                start_x=int(final["start_x"][i]) if final.get("from_archive", [0])[i] else None,
            )
            returns[i], lengths[i] = 0.0, 0

    def _episode_end(
        self, ret: float, length: int, x_pos: int, flag: bool, start_x: int | None = None
    ) -> None:
        """Count and log a finished episode. Episodes started from an archived state
        (``start_x``) stay out of the real-start statistics (recent returns, best x)."""
        self.episodes += 1
        metrics: dict[str, Any] = {
            "return": ret,
            "length": length,
            "x_pos": x_pos,
            "flag_get": flag,
            "stage": self.cfg.stage,
            "episodes": self.episodes,
        }
        if start_x is None:
            self.recent_returns.append(ret)
            self.recent_x.append(x_pos)
            self.best_x = max(self.best_x, x_pos)
        else:
            self.archive_episodes += 1
            metrics.update(from_archive=True, start_x=start_x)
        self.tracker.log(self.step, metrics, kind="episode")

    def _log_train(self, stats: list[torch.Tensor], steps_per_s: float) -> None:
        metrics: dict[str, Any] = {
            "epsilon": round(self.epsilon, 5),
            "steps_per_s": round(steps_per_s, 2),
            "updates": self.learner.updates,
            "episodes": self.episodes,
            "replay_size": len(self.replay),
            "best_x_pos": self.best_x,
        }
        self._check_finite(stats)
        if stats:
            loss, q_mean, grad_norm = torch.stack(stats).mean(0).tolist()  # one device sync
            metrics.update(loss=loss, q_mean=q_mean, grad_norm=grad_norm)
        if self.recent_returns:
            metrics["return_mean100"] = float(np.mean(self.recent_returns))
            metrics["x_pos_mean100"] = float(np.mean(self.recent_x))
        if self.cfg.archive_share > 0:
            episodes, from_archive, rebuilt, step = self._log_mark
            cells = self.archive_state["cells"] if self.archive_state else []
            metrics.update(
                archive_cells=len(cells),
                archive_frontier_x=max((c["x"] for c in cells), default=0),
                # of the episodes that ended since the last log
                archive_episode_share=(self.archive_episodes - from_archive)
                / max(1, self.episodes - episodes),
                # emulator frames replayed to build start states, per agent step
                archive_rebuild_frames_per_step=(self.rebuild_frames - rebuilt)
                / max(1, self.step - step),
            )
        self._log_mark = (self.episodes, self.archive_episodes, self.rebuild_frames, self.step)
        metrics.update(_memory())
        self.tracker.log(self.step, metrics, kind="train")
        if not sys.stderr.isatty():
            shown = {k: metrics[k] for k in ("epsilon", "steps_per_s", "episodes") if k in metrics}
            mean = metrics.get("return_mean100")
            print(
                f"step {self.step}/{self.cfg.total_steps} {shown} return_mean100={mean} "
                f"best_x={self.best_x}",
                file=sys.stderr,
                flush=True,
            )

    def _evaluate(self) -> CheckpointInfo:
        from mario.play import evaluate_during_training

        result = evaluate_during_training(self)
        # best = highest flag rate, then furthest mean x_pos (x_pos < 10,000 in every stage)
        metric = result["flag_rate"] * 10_000 + result["x_pos_mean"]
        self.tracker.log(self.step, {k: v for k, v in result.items() if k != "video"}, kind="eval")
        if result.get("video"):
            self.tracker.log_video(self.step, Path(result["video"]))
        info = self.save()
        if metric > self.best_metric:
            self.best_metric = metric
            mark_best(self.run_dir, info, metric)
        return info


def _memory() -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["host_rss_mb"] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    if torch.cuda.is_available():
        out["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


class _Progress:
    """tqdm bar on a terminal (steps, steps/s, ε, mean return, best x); nothing otherwise."""

    def __init__(self, total: int, initial: int) -> None:
        self.bar = None
        if sys.stderr.isatty() and not os.environ.get("MARIO_NO_PROGRESS"):
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, initial=initial, unit="step", dynamic_ncols=True, smoothing=0.05
            )
        self.last = initial

    def update(self, step: int, epsilon: float, returns: deque[float], best_x: int) -> None:
        if self.bar is None:
            return
        self.bar.update(step - self.last)
        self.last = step
        if step % 64 < 8:
            mean = f"{np.mean(returns):.0f}" if returns else "-"
            self.bar.set_postfix_str(f"eps={epsilon:.3f} ret={mean} best_x={best_x}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
