"""``mario bench train``: the real training loop on the real game, timed by phase and by part.

Three short runs of :class:`mario.training.runner.Runner` in temporary run folders (W&B off, no
replay saved), each a warm-up and then ``seconds`` of measurement in ``windows`` (rates are
medians over the windows, since the machines are shared and noisy):

``collect``
    uniform random actions, no learning: the emulators plus the loop's own bookkeeping
``act``
    the algorithm's actions, no learning: adds inference
``learn``
    the algorithm's actions and its updates (DQN: at ``replay_ratio``, after a burn-in
    that is part of the warm-up; PPO: a rollout, then its epochs): the training loop

The split of the main process's time comes from the timers the loop keeps itself
(:attr:`mario.training.runner.Runner.timers`): ``act`` (inference), ``send`` (actions to the
emulators), ``store`` (replay or rollout, episode bookkeeping), ``hooks``, ``learn`` and
``receive`` (waiting for the emulators, then gathering their results); nothing is patched.

The target is ``0.8 x cores x raw single-core frames/s / frame_skip`` agent steps/s, and the
envs' own limit ``num_envs x raw / frame_skip``; the raw rate and the bare vector env (the
same envs stepped with random actions, nothing else) are measured in the same process.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from mario import algos
from mario.bench.measure import machine, rate
from mario.settings import keys
from mario.training.hooks import Hook, Request
from mario.training.runner import Runner
from mario.training.setup import prepare_run

PARTS: tuple[str, ...] = ("act", "send", "store", "hooks", "learn", "receive")
"""Timed parts of one loop iteration, in loop order (then ``other``)."""
PHASES: tuple[str, ...] = ("collect", "act", "learn")
#: Parts grouped by what they wait for, to name the bottleneck of a phase.
GROUPS: dict[str, tuple[str, ...]] = {
    "emulators": ("receive", "send"),
    "learner": ("learn",),
    "inference": ("act",),
    "loop": ("store", "hooks", "other"),
}
TARGET_FRACTION = 0.8
#: Preset keys that shape a run rather than its speed: the benchmark sets its own.
RUN_KEYS = frozenset(
    {
        "total_steps",
        "num_envs",
        "run_dir",
        "burn_in",
        "checkpoint_every",
        "eval_every",
        "eval_episodes",
        "log_every",
        "replay_size",
        "save_replay",
        "wandb_mode",
        "device",
        "tensorboard",
    }
)
_NEVER = 10**15  # steps: an interval or total that is never reached


def preset_overrides(name: str) -> dict[str, Any]:
    """A preset's learning settings (algorithm, batch, replay ratio, network, bf16, ...) for
    the benchmark, without the keys that shape a run (:data:`RUN_KEYS`)."""
    from mario.config import load_yaml
    from mario.presets import preset_path

    return {k: v for k, v in load_yaml(preset_path(name)).items() if k not in RUN_KEYS}


class _Measure(Hook):
    """Warm up, then time ``windows`` windows of ``seconds / windows`` and stop the run."""

    def __init__(self, warmup: float, seconds: float, windows: int, min_step: int) -> None:
        self.warmup, self.window, self.windows = warmup, seconds / windows, windows
        self.min_step = min_step  # e.g. the burn-in: measuring starts after it
        self.started: float | None = None
        self.mark: tuple[float, int, int] | None = None  # time, step, updates
        self.rates: list[float] = []
        self.seconds = 0.0
        self.steps = 0
        self.updates = 0
        self.timers: dict[str, float] = {}
        self.cpu_start = 0.0
        self.cpu = 0.0
        self.first: tuple[float, int, int] = (0.0, 0, 0)

    def after_step(self, runner: Runner) -> Request | None:
        now = time.perf_counter()
        if self.started is None:
            self.started = now
        if self.mark is None:
            if now - self.started >= self.warmup and runner.step >= self.min_step:
                runner.timers.reset()
                self.mark = (now, runner.step, runner.algo.updates)
                self.first = self.mark
                self.cpu_start = time.thread_time()
            return None
        t0, s0, _ = self.mark
        if now - t0 < self.window:
            return None
        self.rates.append((runner.step - s0) / (now - t0))
        self.mark = (now, runner.step, runner.algo.updates)
        if len(self.rates) == self.windows:
            start, step0, updates0 = self.first
            self.seconds = now - start
            self.steps = runner.step - step0
            self.updates = runner.algo.updates - updates0
            self.timers = dict(runner.timers.seconds)
            self.cpu = time.thread_time() - self.cpu_start
            return Request(stop=True)
        return None


def _phase(
    values: dict[str, Any],
    phase: str,
    *,
    warmup: float,
    seconds: float,
    windows: int,
    min_step: int,
) -> dict[str, Any]:
    """One run of the loop in ``phase``; its rates and where the main process's time went."""
    if phase != "learn" and "burn_in" in keys(algos.get(values.get("algo", "dqn")).settings):
        values = {**values, "burn_in": 0}  # the policy acts from the first step
    with tempfile.TemporaryDirectory(prefix="mario-bench-train-") as tmp:
        setup = prepare_run({**values, "run_dir": str(Path(tmp) / "run")})
        measure = _Measure(warmup, seconds, windows, min_step if phase == "learn" else 0)
        runner = Runner(
            setup,
            argv=["bench", "train"],
            learn=phase == "learn",
            random_actions=phase == "collect",
            hooks=[measure],
        )
        if runner.run() != 0 or not measure.rates:
            raise KeyboardInterrupt("mario bench train was stopped before it finished")
    total = measure.seconds
    spent = {p: measure.timers.get(p, 0.0) for p in PARTS}
    spent["other"] = max(0.0, total - sum(spent.values()))
    iterations = max(1, measure.steps // values["num_envs"])
    result: dict[str, Any] = {
        "seconds": round(total, 3),
        "steps": measure.steps,
        "steps_per_s": round(statistics.median(measure.rates), 1),
        "steps_per_s_windows": [round(r, 1) for r in measure.rates],
        "updates": measure.updates,
        "updates_per_s": round(measure.updates / total, 2),
        "share": {p: round(v / total, 4) for p, v in spent.items()},
        "ms_per_iteration": {p: round(1e3 * v / iterations, 3) for p, v in spent.items()},
        # the main thread's CPU per vector step: one main process can feed the envs while
        # this stays below the emulators' step time
        "main_cpu_ms_per_iteration": round(1e3 * measure.cpu / iterations, 3),
        "main_cpu_share": round(measure.cpu / total, 4),
    }
    if measure.updates:
        result["ms_per_update"] = round(1e3 * spent["learn"] / measure.updates, 3)
    if spent["learn"] > 0:
        # agent steps/s if the main process did nothing but learn at this pace
        result["learner_limit_steps_per_s"] = round(measure.steps / spent["learn"], 1)
    groups = {g: sum(spent[p] for p in parts) / total for g, parts in GROUPS.items()}
    result["groups"] = {g: round(v, 4) for g, v in groups.items()}
    result["bottleneck"] = max(groups, key=lambda g: groups[g])
    return result


def _check(name: str, value: Any, low: float, *, integer: bool = False, strict: bool) -> None:
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    ok = ok and (value > low if strict else value >= low)
    if not ok:
        what = "an int" if integer else "a number"
        raise ValueError(f"{name} must be {what} {'>' if strict else '>='} {low}, got {value!r}")


@contextlib.contextmanager
def _quiet() -> Any:
    """No progress bar and no loop prints (``--json`` output stays one object); restores the
    torch thread count the Runner changes."""
    threads = torch.get_num_threads()
    previous = os.environ.get("MARIO_NO_PROGRESS")
    os.environ["MARIO_NO_PROGRESS"] = "1"
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        if previous is None:
            os.environ.pop("MARIO_NO_PROGRESS", None)
        else:
            os.environ["MARIO_NO_PROGRESS"] = previous
        torch.set_num_threads(threads)


#: The settings a result reports, where the algorithm has them.
_SHOWN_SETTINGS = (
    "replay_ratio",
    "batch_size",
    "replay_size",
    "amp",
    "compile",
    "cuda_graph",
    "dueling",
    "n_steps",
    "epochs",
    "minibatches",
)


def bench_train(
    seconds: float = 20.0,
    num_envs: int = 2,
    device: str = "cpu",
    *,
    warmup: float = 1.0,
    windows: int = 5,
    baseline: bool = True,
    baseline_seconds: float = 2.0,
    repeats: int = 3,
    stage: str = "1-1",
    burn_in: int = 1000,
    replay_size: int = 20_000,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Agent steps/s of ``mario train``'s loop per phase, with the main process's breakdown.

    ``seconds``: measured time of each phase (collect, act, learn), after ``warmup`` seconds
    (and, when learning DQN, ``burn_in`` agent steps). ``baseline``: also measure the raw
    single-core emulator and the bare vector env, ``repeats`` runs of ``baseline_seconds``.
    ``overrides``: more ``mario train`` config values (e.g. ``{"algo": "ppo"}``,
    ``{"batch_size": 64}``). Raises ValueError (ConfigError) naming a bad value.
    """
    from mario.bench.env import _raw_frames, _vector_steps
    from mario.config import build_config
    from mario.device import resolve_device

    _check("seconds", seconds, 0, strict=True)
    _check("num_envs", num_envs, 1, integer=True, strict=False)
    _check("warmup", warmup, 0, strict=False)
    _check("windows", windows, 1, integer=True, strict=False)
    _check("baseline_seconds", baseline_seconds, 0, strict=True)
    _check("repeats", repeats, 1, integer=True, strict=False)
    resolve_device(device)  # a bad device is refused before the baselines run for seconds
    values: dict[str, Any] = {
        "stage": stage,
        "num_envs": num_envs,
        "device": device,
        "wandb_mode": "disabled",
        "total_steps": _NEVER,
        "checkpoint_every": _NEVER,
        "log_every": _NEVER,
        **(overrides or {}),
    }
    # the bench's own replay memory and burn-in, for an algorithm that has them (DQN)
    held = keys(algos.get(values.get("algo", "dqn")).settings)
    mine = {"replay_size": replay_size, "save_replay": False, "burn_in": burn_in}
    values.update({k: v for k, v in mine.items() if k in held})
    cfg = build_config(values)  # validates everything before anything is measured
    result: dict[str, Any] = {
        "machine": machine(),
        "algo": cfg.algo,
        "num_envs": num_envs,
        "device": device,
        "frame_skip": cfg.env.frame_skip,
        "actions": cfg.env.actions,
        "seconds": seconds,
        "windows": windows,
    }
    settings = cfg.algorithm
    result.update({k: getattr(settings, k) for k in _SHOWN_SETTINGS if hasattr(settings, k)})
    if baseline:
        raw = rate(_raw_frames(emulator_only=False), baseline_seconds, repeats)
        run, envs = _vector_steps(num_envs, cfg.env.frame_skip)
        try:
            vector = rate(run, baseline_seconds, repeats)
        finally:
            envs.close()
        target = TARGET_FRACTION * result["machine"]["cores"] * raw / cfg.env.frame_skip
        result.update(
            raw_frames_per_s=round(raw, 1),
            vector_steps_per_s=round(vector, 1),
            target_steps_per_s=round(target, 1),
            # what these envs could give if each had a core and nothing else ran
            env_limit_steps_per_s=round(num_envs * raw / cfg.env.frame_skip, 1),
        )
    min_step = int(getattr(cfg.algorithm, "burn_in", 0))  # learning starts after it
    with _quiet():
        phases = {
            phase: _phase(
                values,
                phase,
                warmup=warmup,
                seconds=seconds,
                windows=windows,
                min_step=min_step,
            )
            for phase in PHASES
        }
    learn = phases["learn"]
    result.update(
        train_steps_per_s=learn["steps_per_s"],
        updates_per_s=learn["updates_per_s"],
        collect_steps_per_s=phases["collect"]["steps_per_s"],
        act_steps_per_s=phases["act"]["steps_per_s"],
        bottleneck=learn["bottleneck"],
    )
    if "learner_limit_steps_per_s" in learn:
        result["learner_limit_steps_per_s"] = learn["learner_limit_steps_per_s"]
    if baseline:
        result["target_ratio"] = round(learn["steps_per_s"] / result["target_steps_per_s"], 3)
        result["env_limit_ratio"] = {
            phase: round(phases[phase]["steps_per_s"] / result["env_limit_steps_per_s"], 3)
            for phase in PHASES
        }
        # the loop's own cost over the bare vector env, both with random actions
        result["collect_vs_vector"] = round(
            phases["collect"]["steps_per_s"] / result["vector_steps_per_s"], 3
        )
    result["phases"] = phases
    return result


def format_train(result: dict[str, Any]) -> str:
    """A short human-readable table of :func:`bench_train`'s result."""
    lines = [
        f"machine: {result['machine']}",
        f"{result['algo']}: {result['num_envs']} envs on {result['device']}, frame skip "
        f"{result['frame_skip']}, {result['seconds']} s per phase",
    ]
    if "target_steps_per_s" in result:
        lines += [
            f"raw emulator (one core)      : {result['raw_frames_per_s']:8.1f} frames/s",
            f"bare vector env              : {result['vector_steps_per_s']:8.1f} steps/s",
            f"target (0.8 x cores x raw/skip): {result['target_steps_per_s']:6.1f} steps/s",
            f"env limit (envs x raw/skip)  : {result['env_limit_steps_per_s']:8.1f} steps/s",
        ]
    for name, phase in result["phases"].items():
        lines.append(
            f"{name:8s}: {phase['steps_per_s']:8.1f} steps/s  {phase['updates_per_s']:7.2f} "
            f"updates/s  bottleneck {phase['bottleneck']}"
        )
        shares = "  ".join(f"{k} {v:.0%}" for k, v in phase["share"].items() if v >= 0.005)
        lines.append(f"          time: {shares}")
    for key in (
        "target_ratio",
        "env_limit_ratio",
        "collect_vs_vector",
        "learner_limit_steps_per_s",
    ):
        if key in result:
            lines.append(f"{key}: {result[key]}")
    return "\n".join(lines)
