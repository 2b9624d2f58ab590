"""The hooks (mario/training/hooks.py) on their own, and how the runner answers them: a hook
reads the run and asks (a save with a score, a stop); it never saves or stops by itself."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mario.storage.checkpoints import list_checkpoints
from mario.training import hooks
from mario.training.hooks import Checkpoint, Periodic, Request, TrainLog
from mario.training.runner import Runner, RunStats
from mario.training.setup import prepare_run
from tests.toy_env import make_corridor_vec


def test_periodic_is_due_once_per_period_whatever_the_steps_jump_by() -> None:
    """Once per multiple of the period, also when started (resumed) between two of them."""
    every = Periodic(100, start=250)
    due = [step for step in (260, 299, 300, 349, 351, 460, 700, 720) if every.due(step)]
    assert due == [300, 460, 700]
    assert [s for s in (100, 150, 200) if Periodic(100, start=100).due(s)] == [200]
    assert not any(Periodic(0, start=0).due(step) for step in range(0, 1000, 50))


def _fake_runner(**run: Any) -> Any:
    logged: list[tuple[int, dict[str, Any], str]] = []
    plots: list[int] = []
    runner = SimpleNamespace(
        step=0,
        cfg=SimpleNamespace(run=SimpleNamespace(log_every=100, checkpoint_every=200, **run)),
        stats=RunStats(),
        algo=SimpleNamespace(updates=7, status=lambda step: {"epsilon": 0.5}),
        learning_stats=lambda: {"loss": 1.5},
        collector=SimpleNamespace(metrics=lambda: {"archive_cells": 3, "archive_frontier_x": 90}),
        tracker=SimpleNamespace(
            log=lambda step, metrics, kind: logged.append((step, metrics, kind)),
            plot=lambda: plots.append(1),
        ),
    )
    return runner, logged, plots


def test_the_checkpoint_hook_asks_for_a_save_and_draws_the_curves_once_a_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(hooks.time, "monotonic", lambda: clock[0])
    runner, _, plots = _fake_runner(total_steps=1000)
    hook = Checkpoint(runner)
    answers = {}
    for step, seconds in ((100, 10), (200, 10), (250, 10), (400, 10), (600, 61)):
        clock[0] += seconds
        runner.step = step
        answers[step] = hook.after_step(runner)
        if step == 400:
            assert not plots  # checkpoints within a minute of the start draw nothing
    save = Request(save=True)
    assert answers == {100: None, 200: save, 250: None, 400: save, 600: save}
    assert len(plots) == 1  # a minute after the start: drawn at the checkpoint
    hook.close(runner)
    assert len(plots) == 2  # and always at the end


def test_the_train_log_gathers_the_run_s_figures_into_one_record(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runner, logged, _ = _fake_runner(total_steps=1000)
    hook = TrainLog(runner)
    runner.stats.add(
        SimpleNamespace(ret=10.0, length=5, x_pos=40, flag=False, start_x=None, stage=None)
    )
    runner.step = 100
    assert hook.after_step(runner) is None  # it only logs
    ((step, metrics, kind),) = logged
    assert (step, kind) == (100, "train")
    assert metrics["loss"] == 1.5 and metrics["epsilon"] == 0.5 and metrics["updates"] == 7
    assert metrics["archive_cells"] == 3 and metrics["return_mean100"] == 10.0
    assert metrics["host_rss_mb"] > 0
    assert "step 100/1,000" in capsys.readouterr().err  # stderr is not a terminal here


def read_best(run: Path) -> tuple[int, float]:
    best = json.loads((run / "best.json").read_text())
    return best["step"], best["metric"]


def _toy_runner(tmp_path: Path, **values: Any) -> Runner:
    setup = prepare_run(
        {
            "run_dir": str(tmp_path / "run"),
            "num_envs": 2,
            "replay_size": 1000,
            "burn_in": 10,
            "wandb_mode": "disabled",
            **values,
        }
    )
    return Runner(setup, env_factory=lambda seed: make_corridor_vec(2, seed), n_actions=3)


def test_the_runner_saves_once_for_all_the_hooks_that_ask_and_picks_the_best(
    tmp_path: Path,
) -> None:
    """One save for every request of a step; with evaluations the best checkpoint is the
    highest score; a stop request stops the run (after a save, as a signal does)."""
    runner = _toy_runner(tmp_path, eval_every=100)
    runner.step = 100
    runner._answer([Request(save=True, score=3.0), None, Request(save=True)])
    runner.step = 200
    runner._answer([Request(save=True, score=2.0)])  # worse: not the best
    assert [c.step for c in list_checkpoints(runner.run_dir)] == [100, 200]
    assert read_best(runner.run_dir) == (100, 3.0) and not runner.stop_requested
    runner._answer([Request(stop=True)])
    assert runner.stop_requested and len(list_checkpoints(runner.run_dir)) == 2
    runner.setup.release()


def test_without_evaluations_the_best_is_the_best_mean_return(tmp_path: Path) -> None:
    runner = _toy_runner(tmp_path)
    for step, ret in ((100, 5.0), (200, 9.0), (300, 1.0)):
        runner.stats.add(
            SimpleNamespace(ret=ret, length=1, x_pos=1, flag=False, start_x=None, stage=None)
        )
        runner.step = step
        runner._answer([Request(save=True, score=100.0)])  # a score counts only with evals
    mean_at_200 = (5.0 + 9.0) / 2
    assert read_best(runner.run_dir) == (200, mean_at_200)
    runner.setup.release()


def test_an_evaluation_leaves_the_training_random_streams_as_it_found_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Greedy evaluation steps draw from the acting policy's generator: without the hook
    keeping it (and torch's and NumPy's global streams), 20 evaluation episodes instead of 5
    changed everything a run learned after its first evaluation."""
    import numpy as np
    import torch

    from mario.playing import episodes

    def playing(agent: Any, stages: list[str], n: int, **kwargs: Any) -> dict[str, Any]:
        torch.rand(n, generator=agent.policy.generator)
        torch.rand(n), np.random.rand(n)
        one = {"episodes": n, "return_mean": 1.0, "x_pos_mean": 40.0, "flag_rate": 0.0}
        return {stage: one | {"x_pos_max": 40, "runs": []} for stage in stages}

    monkeypatch.setattr(episodes, "evaluate", playing)
    runner = _toy_runner(tmp_path, eval_every=100, eval_robust=True)
    monkeypatch.setattr(runner.tracker, "log_video", lambda step, path: None)
    generator = runner.algo.policy().generator
    before = (generator.get_state(), torch.get_rng_state(), np.random.get_state()[1].copy())
    hook = hooks.Evaluate(runner)
    runner.step = 100
    request = hook.after_step(runner)
    assert request is not None and request.save and request.score is not None
    after = (generator.get_state(), torch.get_rng_state(), np.random.get_state()[1])
    for was, now in zip(before, after, strict=True):
        assert np.array_equal(np.asarray(was), np.asarray(now))
    torch.rand(3, generator=generator)  # the check itself can fail: a draw moves the state
    assert not torch.equal(generator.get_state(), before[0])
    runner.setup.release()
