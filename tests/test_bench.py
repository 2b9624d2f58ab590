"""`mario bench train`: the real training loop on the real game, timed by phase and by part."""

from __future__ import annotations

import json

import pytest
import torch

from mario.bench.train import PARTS, PHASES, RUN_KEYS, bench_train, format_train, preset_overrides
from mario.config import load_yaml
from mario.presets import preset_path
from tests.helpers import run_cli

ALL_PARTS = (*PARTS, "other")


def check_phase(name: str, phase: dict) -> None:
    assert phase["seconds"] > 0 and phase["steps"] > 0, (name, phase)
    assert phase["steps_per_s"] > 0 and all(r > 0 for r in phase["steps_per_s_windows"])
    assert set(phase["share"]) == set(ALL_PARTS) and set(phase["ms_per_iteration"]) == set(
        ALL_PARTS
    )
    # the parts split the phase's wall time: their shares add up to one
    assert sum(phase["share"].values()) == pytest.approx(1.0, abs=0.01)
    assert phase["share"]["receive"] > 0 and phase["share"]["store"] > 0
    assert 0 < phase["main_cpu_share"] <= 1.05
    assert phase["bottleneck"] in ("emulators", "learner", "inference", "loop")
    if name != "learn":  # nothing learns
        assert phase["updates"] == 0 and phase["share"]["learn"] == 0
    else:
        assert phase["updates"] > 0 and phase["ms_per_update"] > 0
        assert phase["learner_limit_steps_per_s"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_bench_train_times_the_real_loop(algo: str, capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    overrides = {"batch_size": 8} if algo == "dqn" else {"algo": "ppo", "n_steps": 32}
    result = bench_train(
        seconds=1.0,
        num_envs=2,
        device="cpu",
        warmup=0.3,
        windows=2,
        baseline_seconds=0.3,
        repeats=1,
        burn_in=64,
        overrides=overrides,
    )
    assert capsys.readouterr().out == ""  # the loop's prints stay out of --json output
    assert torch.get_num_threads() == threads  # the Runner's CPU thread setting is undone
    assert result["algo"] == algo and result["machine"]["cores"] >= 1
    for key in ("raw_frames_per_s", "vector_steps_per_s", "target_steps_per_s"):
        assert result[key] > 0, key
    target = 0.8 * result["machine"]["cores"] * result["raw_frames_per_s"] / 4
    assert result["target_steps_per_s"] == pytest.approx(target, rel=1e-3)
    limit = result["num_envs"] * result["raw_frames_per_s"] / 4
    assert result["env_limit_steps_per_s"] == pytest.approx(limit, rel=1e-3)
    for phase in PHASES:
        ratio = result["phases"][phase]["steps_per_s"] / limit
        assert result["env_limit_ratio"][phase] == pytest.approx(ratio, abs=1e-3)
        check_phase(phase, result["phases"][phase])
    assert result["phases"]["collect"]["share"]["act"] < result["phases"]["act"]["share"]["act"]
    assert result["train_steps_per_s"] == result["phases"]["learn"]["steps_per_s"]
    assert result["updates_per_s"] > 0
    json.dumps(result)  # --json prints it as is
    text = format_train(result)
    assert "learn" in text and "target" in text


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"seconds": 0}, "seconds"),
        ({"num_envs": 0}, "num_envs"),
        ({"windows": 0}, "windows"),
        ({"warmup": -1}, "warmup"),
        ({"device": "tpu"}, "device"),
        ({"overrides": {"batch_size": 0}}, "batch_size"),
        ({"overrides": {"algo": "ppo", "replay_ratio": 0.5}}, "DQN option"),
    ],
)
def test_bench_train_rejects_bad_values_before_starting(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):  # ConfigError is a ValueError
        bench_train(**kwargs)


@pytest.mark.slow
def test_cli_bench_train_prints_one_json_object() -> None:
    """The command line's wiring (what the phases measure: the test above). PPO, whose learn
    phase has no burn-in to wait for (DQN's is 1,000 steps): 8 s of CPU instead of 21."""
    args = ["--seconds", "0.5", "--repeats", "1", "--num-envs", "1", "--device", "cpu"]
    result = run_cli("bench", "train", *args, "--algo", "ppo", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # the whole of stdout: nothing else printed there
    assert data["num_envs"] == 1 and data["algo"] == "ppo" and data["train_steps_per_s"] > 0
    assert set(data["phases"]) == {"collect", "act", "learn"}


def test_bench_train_takes_a_presets_learning_settings_only() -> None:
    """A preset's learning settings, not its run's length, envs or replay memory."""
    preset = load_yaml(preset_path("fast-1-1"))
    values = preset_overrides("fast-1-1")
    assert values == {k: v for k, v in preset.items() if k not in RUN_KEYS}
    assert {"total_steps", "num_envs", "replay_size"} <= preset.keys() - values.keys()
