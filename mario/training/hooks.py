"""What the training loop does besides acting and learning, each on its own schedule.

A hook's ``after_step(runner)`` runs after every stored vector step, decides itself whether
it is due, reads what it needs of the run and returns a :class:`Request` (or None): a save
(with an evaluation's score, from which the runner picks the best checkpoint) or a stop. No
hook saves or stops the run itself. ``close(runner)`` runs once at the end. The default
hooks, in order: the progress bar, the train log (metrics.jsonl, W&B, TensorBoard, a log
line when not on a terminal), the evaluation (a greedy evaluation with a video) and the
checkpoint (with the learning curves). Any "every N steps" job is one more hook.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mario.storage.checkpoints import rng_state, set_rng_state

if TYPE_CHECKING:
    from mario.algos.base import Policy
    from mario.training.runner import Runner

#: Seconds between redrawings of ``RUN/curves.png`` at checkpoints.
PLOT_EVERY_S = 60.0


class Periodic:
    """Due at each multiple of ``every`` agent steps after ``start`` (never when ``every`` is
    0): a resumed run keeps the fresh run's grid, so its evaluations, checkpoints and curves
    line up with other runs' (and the last checkpoints stay ``every`` apart)."""

    def __init__(self, every: int, start: int) -> None:
        self.every = every
        self.next = (start // every + 1) * every if every else None

    def due(self, step: int) -> bool:
        if self.next is None or step < self.next:
            return False
        while self.next <= step:
            self.next += self.every
        return True


@dataclass(frozen=True)
class Request:
    """What a hook asks of the loop after a step: a checkpoint (``save``; ``score``: an
    evaluation's, the higher the better, for the best-checkpoint choice) or the end of the
    run (``stop``: saved, as after a stop signal)."""

    save: bool = False
    score: float | None = None
    stop: bool = False


class Hook:
    """Base: does nothing. Subclasses override what they need."""

    def after_step(self, runner: Runner) -> Request | None:
        """After every stored vector step; what the loop should do, if anything."""
        return None

    def close(self, runner: Runner) -> None:
        """Once, when the run ends normally (finished or stopped by a signal, saved)."""
        return None

    def teardown(self) -> None:
        """Always, however the run ends (release terminals, files)."""
        return None


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


class TrainLog(Hook):
    """Every ``log_every`` steps: learning statistics, episode figures, the start archive,
    memory; one ``kind="train"`` record, and a log line when stderr is not a terminal."""

    def __init__(self, runner: Runner) -> None:
        self.schedule = Periodic(runner.cfg.run.log_every, runner.step)
        self.clock, self.clock_step = time.perf_counter(), runner.step

    def after_step(self, runner: Runner) -> None:
        if not self.schedule.due(runner.step):
            return
        now = time.perf_counter()
        steps_per_s = (runner.step - self.clock_step) / max(now - self.clock, 1e-9)
        self.clock, self.clock_step = now, runner.step
        stats = runner.stats
        metrics: dict[str, Any] = {
            "steps_per_s": round(steps_per_s, 2),
            "updates": runner.algo.updates,
            "episodes": stats.episodes,
            "best_x_pos": stats.best_x,
            **runner.algo.status(runner.step),
            **runner.learning_stats(),
        }
        if stats.recent_returns:
            metrics["return_mean100"] = float(sum(stats.recent_returns) / len(stats.recent_returns))
            metrics["x_pos_mean100"] = float(sum(stats.recent_x) / len(stats.recent_x))
        for stage, xs in sorted(stats.stage_x.items()):  # several stages at once
            metrics[f"x_pos_mean100/{stage}"] = float(sum(xs) / len(xs))
        collector = runner.collector
        if collector is not None:  # the start archive's figures; remote actors' restarts, lag
            metrics.update(collector.metrics())
        metrics.update(memory_metrics())
        runner.tracker.log(runner.step, metrics, kind="train")
        if not sys.stderr.isatty():
            print(log_line(runner, metrics), file=sys.stderr, flush=True)


def log_line(runner: Runner, metrics: dict[str, Any]) -> str:
    """One line that reads like the progress bar: ``step 10,000/300,000  106 steps/s  ε 0.905
    episodes 61  return 552  x 694  best x 1,785``."""
    total = runner.cfg.run.total_steps
    parts = [f"step {runner.step:,}/{total:,}", f"{metrics['steps_per_s']:,.0f} steps/s"]
    if "epsilon" in metrics:
        parts.append(f"ε {metrics['epsilon']:.3f}")
    parts.append(f"episodes {metrics['episodes']:,}")
    if "return_mean100" in metrics:
        parts.append(f"return {_fmt(metrics['return_mean100'])}")
        parts.append(f"x {_fmt(metrics['x_pos_mean100'])}")
    parts.append(f"best x {metrics['best_x_pos']:,}")
    for key, label in (("loss", "loss"), ("policy_loss", "π loss"), ("entropy", "entropy")):
        if key in metrics:
            parts.append(f"{label} {_fmt(metrics[key])}")
    if "archive_cells" in metrics:
        parts.append(
            f"archive {metrics['archive_cells']} cells to x {metrics['archive_frontier_x']:,}"
        )
    return "  ".join(parts)


def eval_summary(per_stage: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One evaluation record: a single stage's summary as it is; for several stages the means
    over them (what the best checkpoint is chosen by) and each stage's figures as
    ``STAGE/KEY``."""
    if len(per_stage) == 1:
        return next(iter(per_stage.values()))
    keys = ("return_mean", "x_pos_mean", "flag_rate")
    out: dict[str, Any] = {
        k: round(sum(s[k] for s in per_stage.values()) / len(per_stage), 4) for k in keys
    }
    out["episodes"] = sum(s["episodes"] for s in per_stage.values())
    for stage, s in per_stage.items():
        out.update({f"{stage}/{k}": s[k] for k in (*keys, "x_pos_max")})
    return out


class Evaluate(Hook):
    """Every ``eval_every`` steps: greedy episodes from the real start of the run's stage (or
    each of its stages) on fresh seeds, a video of the first, metrics, and a checkpoint with
    the evaluation's score, from which the runner picks the best: the flag rate first, then
    the mean x_pos (means over the stages). With ``eval_robust`` the same seeds are also
    played with ε 0.05 and with sticky actions 0.25; their flag rates are logged beside
    (``epsilon_0.05/flag_rate``, ``sticky_0.25/flag_rate``) and the sticky one comes first
    in the score.

    An evaluation leaves the training's random streams as it found them (the acting policy's
    generator, which greedy steps draw from too, and the global ones a checkpoint keeps), so
    how many episodes it plays does not change what the run learns afterwards."""

    def __init__(self, runner: Runner) -> None:
        self.schedule = Periodic(runner.cfg.eval.eval_every, runner.step)

    def after_step(self, runner: Runner) -> Request | None:
        if not self.schedule.due(runner.step):
            return None
        policy = runner.algo.policy()
        generator = getattr(policy, "generator", None)
        if not isinstance(generator, torch.Generator):
            generator = None
        policy_kept = generator.get_state() if generator is not None else None
        kept = rng_state()
        try:
            return self._evaluate(runner, policy)
        finally:
            set_rng_state(kept)
            if generator is not None and policy_kept is not None:
                generator.set_state(policy_kept)

    def _evaluate(self, runner: Runner, policy: Policy) -> Request:
        from mario.config import EVAL_SEED
        from mario.playing.agents import Agent
        from mario.playing.episodes import ROBUST, evaluate

        cfg = runner.cfg
        videos = runner.run_dir / "videos"
        videos.mkdir(exist_ok=True)
        video = videos / f"eval-step-{runner.step:09d}.mp4"
        agent = Agent(policy, cfg, runner.step)
        stages = cfg.run.stage_list()
        episodes, seed = cfg.eval.eval_episodes, EVAL_SEED + runner.step
        max_steps = cfg.env.max_episode_steps or 5000
        result = evaluate(agent, stages, episodes, seed=seed, max_steps=max_steps, video_path=video)
        summary = _summary(result)
        # the score: flag rate first, then the mean x_pos (x_pos < 10,000 in every stage)
        score = summary["flag_rate"] * 10_000 + summary["x_pos_mean"]
        if cfg.eval.eval_robust:
            for name, (epsilon, sticky) in ROBUST.items():
                perturbed = _summary(
                    evaluate(
                        agent,
                        stages,
                        episodes,
                        seed=seed,
                        max_steps=max_steps,
                        epsilon=epsilon,
                        sticky=sticky,
                    )
                )
                summary.update({f"{name}/{k}": perturbed[k] for k in ("flag_rate", "x_pos_mean")})
            score += summary["sticky_0.25/flag_rate"] * 100_000_000  # the robust rate first
        runner.tracker.log(runner.step, summary, kind="eval")
        runner.tracker.log_video(runner.step, Path(video))
        return Request(save=True, score=score)


def _summary(result: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """:func:`eval_summary` of an evaluation's per-stage results, without their runs."""
    return eval_summary({s: {k: v for k, v in r.items() if k != "runs"} for s, r in result.items()})


class Checkpoint(Hook):
    """Every ``checkpoint_every`` steps: a checkpoint, and the learning curves redrawn if
    :data:`PLOT_EVERY_S` have passed since they last were (a drawing costs ~1 s of CPU); always
    at the end."""

    def __init__(self, runner: Runner) -> None:
        self.schedule = Periodic(runner.cfg.run.checkpoint_every, runner.step)
        self._plotted = time.monotonic()

    def after_step(self, runner: Runner) -> Request | None:
        if not self.schedule.due(runner.step):
            return None
        if time.monotonic() - self._plotted >= PLOT_EVERY_S:
            runner.tracker.plot()
            self._plotted = time.monotonic()
        return Request(save=True)

    def close(self, runner: Runner) -> None:
        runner.tracker.plot()


class Progress(Hook):
    """A tqdm bar on a terminal (steps, steps/s, ε, mean return, best x); nothing otherwise
    (or with ``MARIO_NO_PROGRESS`` set)."""

    def __init__(self, runner: Runner) -> None:
        self.bar: Any = None
        self.last = runner.step
        if sys.stderr.isatty() and not os.environ.get("MARIO_NO_PROGRESS"):
            from tqdm import tqdm

            self.bar = tqdm(
                total=runner.cfg.run.total_steps,
                initial=runner.step,
                unit="step",
                dynamic_ncols=True,
                smoothing=0.05,
            )

    def after_step(self, runner: Runner) -> None:
        if self.bar is None:
            return
        self.bar.update(runner.step - self.last)
        self.last = runner.step
        if runner.step % 64 < runner.cfg.run.num_envs:
            status = runner.algo.status(runner.step)
            mean = runner.stats.mean_return()
            parts = [f"ε={status['epsilon']:.3f}"] if "epsilon" in status else []
            parts += [f"ret={mean:.0f}" if mean is not None else "ret=-"]
            parts += [f"best_x={runner.stats.best_x}"]
            self.bar.set_postfix_str(" ".join(parts), refresh=False)

    def close(self, runner: Runner) -> None:
        self.teardown()

    def teardown(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def memory_metrics() -> dict[str, float]:
    """The process's resident memory and the GPU's peak allocation, in MiB."""
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


def default_hooks(runner: Runner) -> list[Hook]:
    """Progress, train log, evaluation, checkpoint: in this order after every step."""
    return [Progress(runner), TrainLog(runner), Evaluate(runner), Checkpoint(runner)]
