"""End-to-end training throughput: the real ``Trainer`` loop on the real game, timed by part.

``bench_train`` runs :class:`mario.train.Trainer` in a temporary run folder (W&B disabled,
no checkpoint before the final one, no replay saved) through three phases, each a short
warm-up and then ``seconds`` of measurement split into ``windows`` (rates are medians over
the windows, since the machines are shared and noisy):

``collect``
    random actions, as in the burn-in: emulators plus the loop's own bookkeeping
``act``
    the policy's actions, no learning (replay ratio 0): adds inference
``learn``
    the policy's actions and learner updates at ``replay_ratio``: the training loop

Timing proxies, set as instance attributes on the trainer's parts, split the main process's
wall time: ``wait_envs`` (``envs.step_wait``: emulators still running, then gathering their
results), ``step_async`` (sending actions), ``inference`` (``policy.act``), ``sample``
(``replay.sample``), ``update`` (``learner.update``), ``priority``
(``replay.update_priority``), ``replay_add`` (``replay.add``), ``logging`` (episode ends and
train logs) and ``other`` (the rest of the loop). The phases switch by changing the live
config's ``burn_in`` and ``replay_ratio`` between two steps, so ``mario.train`` needs no hook.

The issue's target is ``0.8 x cores x raw single-core frames/s / frame_skip`` agent steps/s at
the default replay ratio; the raw rate and the bare vector env (the same envs stepped with
random actions, nothing else) are measured in the same process, just before the loop.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from gymnasium.vector import VectorEnv

from mario.bench import _rate, _raw_frames, _vector_steps, machine
from mario.env import make_vec_env
from mario.train import Trainer, prepare_run

BUCKETS: tuple[str, ...] = (
    "wait_envs",
    "step_async",
    "inference",
    "sample",
    "update",
    "priority",
    "replay_add",
    "logging",
)
"""Timed parts of one loop iteration, in the order the breakdown lists them (then other)."""
PHASES: tuple[str, ...] = ("collect", "act", "learn")
#: Parts grouped by what they wait for, to name the bottleneck of the learn phase.
GROUPS: dict[str, tuple[str, ...]] = {
    "emulators": ("wait_envs", "step_async"),
    "learner": ("sample", "update", "priority"),
    "inference": ("inference",),
    "loop": ("replay_add", "logging", "other"),
}
TARGET_FRACTION = 0.8
_NEVER = 10**15  # steps: a burn-in / checkpoint interval / total that is never reached


@dataclass
class _Segment:
    """One stretch of the schedule: a warm-up (``phase`` None) or a measured window."""

    mode: str
    phase: str | None
    start: float
    deadline: float
    updates_start: int
    cpu_start: float
    end: float = 0.0
    cpu_end: float = 0.0
    updates_end: int = 0
    iterations: int = 0
    time: dict[str, float] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0.0))
    cpu: dict[str, float] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0.0))
    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))


class _Probe:
    """Timing proxies for the trainer's parts and the phase schedule they drive."""

    def __init__(
        self, trainer: Trainer, schedule: list[tuple[str, float, str | None]], ratio: float
    ) -> None:
        self.trainer = trainer
        self.schedule = schedule
        self.ratio = ratio
        self.segments: list[_Segment] = []
        self.current: _Segment | None = None
        self.index = -1
        self.finished_at: float | None = None

    def timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def proxy(*args: Any, **kwargs: Any) -> Any:
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                segment = self.current
                if segment is not None:
                    segment.time[name] += time.perf_counter() - start
                    segment.cpu[name] += time.thread_time() - cpu
                    segment.calls[name] += 1

        return proxy

    def instrument(self) -> None:
        t = self.trainer
        t.policy.act = self.timed("inference", t.policy.act)  # type: ignore[method-assign]
        t.replay.sample = self.timed("sample", t.replay.sample)  # type: ignore[method-assign]
        t.replay.add = self.timed("replay_add", t.replay.add)  # type: ignore[method-assign]
        t.replay.update_priority = self.timed(  # type: ignore[method-assign]
            "priority", t.replay.update_priority
        )
        t.learner.update = self.timed("update", t.learner.update)  # type: ignore[method-assign]
        t._episode_end = self.timed("logging", t._episode_end)  # type: ignore[method-assign]
        t._log_train = self.timed("logging", t._log_train)  # type: ignore[method-assign]

    def wrap_envs(self, envs: VectorEnv) -> VectorEnv:
        envs.step_async = self.timed("step_async", envs.step_async)  # type: ignore[method-assign]
        step_wait = self.timed("wait_envs", envs.step_wait)

        def proxy(*args: Any, **kwargs: Any) -> Any:
            out = step_wait(*args, **kwargs)
            now = time.perf_counter()
            if self.current is not None:
                self.current.iterations += 1
            if self.current is None or now >= self.current.deadline:
                self._advance(now)
            return out

        envs.step_wait = proxy  # type: ignore[method-assign]
        return envs

    def _advance(self, now: float) -> None:
        """Close the current segment and open the next one; stop the loop after the last."""
        t = self.trainer
        cpu = time.thread_time()
        if self.current is not None:
            self.current.end = now
            self.current.cpu_end = cpu
            self.current.updates_end = t.learner.updates
            self.segments.append(self.current)
        self.index += 1
        if self.index == len(self.schedule):
            self.current = None
            self.finished_at = now
            t.stop_requested = True  # the loop ends after this step (and saves once)
            return
        mode, seconds, phase = self.schedule[self.index]
        if self.index == 0 or self.schedule[self.index - 1][0] != mode:
            self._set_mode(mode)
        self.current = _Segment(mode, phase, now, now + seconds, t.learner.updates, cpu)

    def _set_mode(self, mode: str) -> None:
        """From the next step on: random actions, policy actions, or policy + learning."""
        cfg = self.trainer.cfg
        if mode == "collect":
            cfg.burn_in = _NEVER
            return
        # ``step`` counts this step only after step_wait returns: the next step starts at
        # step + num_envs, and learning is due from there (no backlog of updates).
        cfg.burn_in = self.trainer.step + cfg.num_envs
        cfg.replay_ratio = self.ratio if mode == "learn" else 0.0


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
    }
)


def preset_overrides(name: str) -> dict[str, Any]:
    """A preset's learning settings (batch, replay ratio, network, bf16, ...) for the benchmark,
    without the keys that shape a run (:data:`RUN_KEYS`)."""
    from mario.config import load_yaml
    from mario.presets import preset_path

    return {k: v for k, v in load_yaml(preset_path(name)).items() if k not in RUN_KEYS}


def _check(name: str, value: Any, low: float, *, integer: bool = False, strict: bool) -> None:
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    ok = ok and (value > low if strict else value >= low)
    if not ok:
        what = "an int" if integer else "a number"
        raise ValueError(f"{name} must be {what} {'>' if strict else '>='} {low}, got {value!r}")


@contextlib.contextmanager
def _quiet_loop() -> Iterator[None]:
    """No progress bar and no loop prints (``--json`` output stays one object); restores the
    torch thread count the Trainer changes on CPU."""
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


def _phase_result(
    segments: list[_Segment], num_envs: int, frame_skip: int, ratio: float
) -> dict[str, Any]:
    seconds = sum(s.end - s.start for s in segments)
    iterations = sum(s.iterations for s in segments)
    updates = sum(s.updates_end - s.updates_start for s in segments)
    rates = [s.iterations * num_envs / (s.end - s.start) for s in segments]
    spent = {b: sum(s.time[b] for s in segments) for b in BUCKETS}
    calls = {b: sum(s.calls[b] for s in segments) for b in BUCKETS}
    spent["other"] = max(0.0, seconds - sum(spent.values()))
    # the main thread's own CPU time: what is left of wait_envs is gathering the results
    cpu = {b: sum(s.cpu[b] for s in segments) for b in BUCKETS}
    cpu_total = sum(s.cpu_end - s.cpu_start for s in segments)
    cpu["other"] = max(0.0, cpu_total - sum(cpu.values()))
    steps_per_s = statistics.median(rates)
    per_iteration = max(iterations, 1)
    result: dict[str, Any] = {
        "seconds": round(seconds, 3),
        "steps": iterations * num_envs,
        "steps_per_s": round(steps_per_s, 1),
        "steps_per_s_windows": [round(r, 1) for r in rates],
        "frames_per_s": round(steps_per_s * frame_skip, 1),
        "updates": updates,
        "updates_per_s": round(updates / seconds, 2),
        # where the main process's wall time goes: share of the phase, ms per vector step
        "share": {b: round(v / seconds, 4) for b, v in spent.items()},
        "ms_per_iteration": {b: round(1e3 * v / per_iteration, 3) for b, v in spent.items()},
        "ms_per_call": {b: round(1e3 * spent[b] / calls[b], 3) for b in BUCKETS if calls[b]},
        "cpu_ms_per_iteration": {b: round(1e3 * v / per_iteration, 3) for b, v in cpu.items()},
        # main-thread CPU per vector step: one main process can feed envs while this stays
        # below the emulators' step time
        "main_cpu_ms_per_iteration": round(1e3 * cpu_total / per_iteration, 3),
        "main_cpu_share": round(cpu_total / seconds, 4),
    }
    if updates:
        per_update = (spent["sample"] + spent["update"] + spent["priority"]) / updates
        result["ms_per_update"] = round(1e3 * per_update, 3)
        # agent steps/s if the main process did nothing but learn at this replay ratio
        if ratio > 0:
            result["learner_limit_steps_per_s"] = round(1.0 / (ratio * per_update), 1)
    groups = {g: sum(spent[b] for b in parts) / seconds for g, parts in GROUPS.items()}
    result["groups"] = {g: round(v, 4) for g, v in groups.items()}
    result["bottleneck"] = max(groups, key=lambda g: groups[g])
    return result


def bench_train(
    seconds: float = 20.0,
    num_envs: int = 2,
    device: str = "cpu",
    replay_ratio: float | None = None,
    *,
    warmup: float = 1.0,
    windows: int = 5,
    baseline: bool = True,
    baseline_seconds: float = 2.0,
    repeats: int = 3,
    stage: str = "1-1",
    replay_size: int = 20_000,
    overrides: dict[str, Any] | None = None,
    trainer_class: type[Trainer] = Trainer,
) -> dict[str, Any]:
    """Agent steps/s of ``mario train``'s loop per phase, with the main process's breakdown.

    ``seconds``: measured time of each phase (collect, act, learn), after ``warmup`` seconds
    of the same phase. ``replay_ratio``: updates per agent step while learning (None: the
    config's default). ``baseline``: also measure the raw single-core emulator (for the
    target) and the bare vector env, ``repeats`` runs of ``baseline_seconds`` each.
    ``overrides``: more ``mario train`` config values (e.g. ``{"batch_size": 64}``).
    ``trainer_class``: a Trainer subclass to measure instead (a changed loop, side by side).
    Takes about ``3 * (warmup + seconds)`` plus ``2 * repeats * baseline_seconds`` plus
    start-up and the final checkpoint.

    Per phase: ``steps_per_s`` (median over the windows), ``updates_per_s``, and where the
    main process's wall time goes (``share``, ``ms_per_iteration``: per vector step) and
    its main thread's CPU time (``cpu_ms_per_iteration``; ``wait_envs`` CPU is gathering the
    results, the rest of it is waiting for the emulators).
    Raises ValueError (ConfigError) naming a bad value.
    """
    _check("seconds", seconds, 0, strict=True)
    _check("num_envs", num_envs, 1, integer=True, strict=False)
    _check("warmup", warmup, 0, strict=False)
    _check("windows", windows, 1, integer=True, strict=False)
    _check("baseline_seconds", baseline_seconds, 0, strict=True)
    _check("repeats", repeats, 1, integer=True, strict=False)
    if replay_ratio is not None:
        _check("replay_ratio", replay_ratio, 0, strict=False)

    result: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="mario-bench-train-") as tmp:
        values: dict[str, Any] = {
            "stage": stage,
            "num_envs": num_envs,
            "device": device,
            "run_dir": str(Path(tmp) / "run"),
            "wandb_mode": "disabled",
            "total_steps": _NEVER,
            "checkpoint_every": _NEVER,
            "save_replay": False,
            "burn_in": _NEVER,
            "replay_size": replay_size,
            **(overrides or {}),
        }
        if replay_ratio is not None:
            values["replay_ratio"] = replay_ratio
        setup = prepare_run(values)  # validates everything before anything is measured
        cfg = setup.config
        ratio = cfg.replay_ratio
        result.update(
            num_envs=num_envs,
            device=cfg.device,
            replay_ratio=ratio,
            batch_size=cfg.batch_size,
            amp=cfg.amp,
            compile=cfg.compile,
            dueling=cfg.dueling,
            actions=cfg.actions,
            frame_skip=cfg.frame_skip,
            replay_size=cfg.replay_size,
            seconds=seconds,
            windows=windows,
        )
        if baseline:
            raw = _rate(_raw_frames(emulator_only=False), baseline_seconds, repeats)
            run, envs = _vector_steps(num_envs, cfg.frame_skip)
            try:
                vector = _rate(run, baseline_seconds, repeats)
            finally:
                envs.close()
            target = TARGET_FRACTION * result["machine"]["cores"] * raw / cfg.frame_skip
            result.update(
                raw_frames_per_s=round(raw, 1),
                vector_steps_per_s=round(vector, 1),
                target_steps_per_s=round(target, 1),
                # what these envs could give if each had a core and nothing else ran
                env_limit_steps_per_s=round(num_envs * raw / cfg.frame_skip, 1),
            )

        schedule: list[tuple[str, float, str | None]] = []
        for phase in PHASES:
            if warmup > 0:
                schedule.append((phase, warmup, None))
            schedule.extend((phase, seconds / windows, phase) for _ in range(windows))

        with _quiet_loop():
            trainer = trainer_class(setup, argv=["bench", "train"])
            probe = _Probe(trainer, schedule, ratio)
            probe.instrument()
            trainer.env_factory = lambda seed: probe.wrap_envs(
                make_vec_env(cfg.num_envs, cfg.stage, seed=seed, **cfg.env_kwargs())
            )
            trainer.run()
        done = time.perf_counter()
    if probe.finished_at is None:  # a signal stopped the loop before the last window
        raise KeyboardInterrupt("mario bench train was stopped before it finished")

    phases = {
        phase: _phase_result(
            [s for s in probe.segments if s.phase == phase], num_envs, cfg.frame_skip, ratio
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
    # the final checkpoint and curves the loop writes after the last window, and cleanup
    result["teardown_s"] = round(done - (probe.finished_at or done), 2)
    return result


def format_train(result: dict[str, Any]) -> str:
    """A short human-readable table of :func:`bench_train`'s result."""
    lines = [
        f"machine: {result['machine']}",
        f"{result['num_envs']} envs on {result['device']}, replay ratio "
        f"{result['replay_ratio']}, batch {result['batch_size']}, frame skip "
        f"{result['frame_skip']}, {result['seconds']} s per phase",
    ]
    if "target_steps_per_s" in result:
        lines += [
            f"raw emulator (one core)      : {result['raw_frames_per_s']:8.1f} frames/s",
            f"bare vector env              : {result['vector_steps_per_s']:8.1f} steps/s",
            f"target (0.8 x cores x raw/skip): {result['target_steps_per_s']:6.1f} steps/s",
        ]
    for name, phase in result["phases"].items():
        lines.append(
            f"{name:8s}: {phase['steps_per_s']:8.1f} steps/s  {phase['updates_per_s']:7.2f} "
            f"updates/s  bottleneck {phase['bottleneck']}"
        )
        shares = "  ".join(f"{k} {v:.0%}" for k, v in phase["share"].items() if v >= 0.005)
        lines.append(f"          time: {shares}")
    if "env_limit_steps_per_s" in result:
        lines.append(
            f"env limit (envs x raw/skip)  : {result['env_limit_steps_per_s']:8.1f} steps/s, "
            f"ratio by phase {result['env_limit_ratio']}"
        )
    for key in ("target_ratio", "collect_vs_vector", "learner_limit_steps_per_s", "teardown_s"):
        if key in result:
            lines.append(f"{key}: {result[key]}")
    return "\n".join(lines)
