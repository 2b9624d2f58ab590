"""The Python API (``mario.train``, ``load_agent``, ``play``, ``evaluate``): every misuse is
one documented exception naming the parameter (``mario.ConfigError``, ``mario.CheckpointError``),
and training works from a thread other than the main one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import mario
from mario.storage.checkpoints import list_checkpoints


@pytest.fixture(scope="module")
def agent() -> Any:
    return mario.random_agent(seed=0)


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda a: mario.evaluate(a, episodes=0), "bad value 0 for episodes"),
        (lambda a: mario.play(a, episodes=-3), "bad value -3 for episodes"),
        (lambda a: mario.play(a, max_steps=0), "bad value 0 for max_steps"),
        (lambda a: mario.play(a, seed=-1), "bad value -1 for seed"),
        (lambda a: mario.play(a, seed=2**40), "for seed: must be in"),
        (lambda a: mario.play(a, epsilon=2.0), "bad value 2.0 for epsilon"),
        (lambda a: mario.play(a, episodes=1.5), "episodes: expected a whole number"),
        (lambda a: mario.play(a, "1-1\n"), "unknown stage '1-1\\\\n'"),
        (lambda a: mario.evaluate(a, stages="9-1"), "for stages: unknown stage '9-1'"),
        (lambda a: mario.evaluate(a, stages=[1]), "for stages: expected stage names"),
        (lambda a: mario.evaluate(a, stages=[]), "bad value for stages: no stage"),
        (lambda a: mario.load_agent("/nonexistent/run"), "no such run folder"),
        (lambda a: mario.random_agent(actions="all"), "bad value 'all' for actions"),
        (lambda a: mario.train(total_steps=0), "bad value 0 for total_steps"),
        (lambda a: mario.train(device="tpu"), "unknown device 'tpu'"),
    ],
)
def test_misuse_is_one_typed_error_naming_the_parameter(
    agent: Any, call: Callable[[Any], object], needle: str
) -> None:
    with pytest.raises((mario.ConfigError, mario.CheckpointError), match=needle) as caught:
        call(agent)
    assert "\n" not in str(caught.value)


def test_stages_are_names_or_worlds(agent: Any) -> None:
    """``evaluate(stages="1-1")`` is the stage 1-1 (it was read as the stages '1', '-', '1')."""
    assert list(mario.evaluate(agent, stages="1-1", episodes=1, max_steps=2)) == ["1-1"]
    report = mario.evaluate(agent, stages=["1-2", "1-2 1-3"], episodes=1, max_steps=2)
    assert list(report) == ["1-2", "1-3"]


@pytest.mark.slow
def test_train_takes_paths_and_runs_in_a_worker_thread(tmp_path: Path) -> None:
    """``run_dir`` as a Path (it was refused: "expected str"), from a thread that cannot set
    signal handlers (it failed on them): the run trains, saves and returns its folder."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["run"] = mario.train(
                "quickstart",
                run_dir=tmp_path / "run",
                total_steps=64,
                num_envs=1,
                burn_in=32,
                replay_size=1000,
                checkpoint_every=64,
                log_every=64,
                max_episode_steps=20,
                wandb_mode="disabled",
            )
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=240)
    assert not thread.is_alive() and "error" not in outcome, outcome.get("error")
    assert outcome["run"] == tmp_path / "run"
    assert [c.step for c in list_checkpoints(tmp_path / "run")] == [64]
