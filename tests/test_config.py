"""The config (mario/config.py, mario/settings.py): keys routed to their sections, the
algorithm's section from the registry, YAML files, and bad values named in one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mario import presets
from mario.algos.dqn.settings import DQNConfig
from mario.algos.ppo.settings import PPOConfig
from mario.config import (
    MAX_TEXT,
    ConfigError,
    TrainConfig,
    all_keys,
    build_config,
    coerce,
    expand_stages,
    load_yaml,
    sections_of,
)


def test_keys_go_to_their_sections_and_shared_ones_to_the_selected_algorithm() -> None:
    cfg = build_config({"total_steps": 123, "frame_skip": 2, "lr": 0.5, "eval_every": 7})
    assert (cfg.run.total_steps, cfg.env.frame_skip, cfg.eval.eval_every) == (123, 2, 7)
    assert isinstance(cfg.algorithm, DQNConfig) and cfg.algorithm.lr == 0.5
    ppo = build_config({"algo": "ppo", "lr": 0.25, "n_steps": 16})
    assert isinstance(ppo.algorithm, PPOConfig) and (ppo.algorithm.lr, ppo.algorithm.n_steps) == (
        0.25,
        16,
    )
    assert sections_of("lr") == ["dqn", "ppo"] and sections_of("stage") == ["run"]


def test_sticky_actions_are_for_training_only() -> None:
    """``sticky`` reaches the training envs; an evaluation's pipeline (``kwargs``) has none:
    it chooses its own (``mario eval --sticky``)."""
    env = build_config({"sticky": 0.25}).env
    assert env.train_kwargs()["sticky"] == 0.25 and "sticky" not in env.kwargs()


def test_the_flat_mapping_round_trips() -> None:
    """``config.yaml`` and checkpoints hold the flat mapping; building from it gives the same
    config back (a resume's base)."""
    cfg = build_config({"algo": "ppo", "n_steps": 16, "stages": "1 2-1", "num_envs": 5})
    flat = cfg.to_dict()
    assert flat["algo"] == "ppo" and "replay_size" not in flat and flat["n_steps"] == 16
    assert build_config(flat) == cfg
    assert set(flat) <= set(all_keys())


def test_values_are_coerced_from_text() -> None:
    assert coerce("total_steps", "1e6") == 1_000_000 and coerce("total_steps", "5_000") == 5000
    assert coerce("dueling", "yes") is True and coerce("dueling", "off") is False
    assert coerce("lr", "3e-4") == 3e-4
    assert coerce("stages", ["1-1", 2]) == "1-1 2"
    for key, value, needle in [
        ("total_steps", "2.5", "expected int"),
        ("lr", float("nan"), "finite"),
        ("dueling", "maybe", "expected bool"),
        ("run_dir", "x" * (MAX_TEXT + 1), "at most 4,096 characters"),
        ("total_steps", 10**16, "whole numbers up to 1e+15"),
        ("lr", [1, 2], "expected float"),
        ("no_such_key", 1, "unknown config key 'no_such_key'"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(needle)):
            coerce(key, value)


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"algo": "a3c"}, "bad value 'a3c' for algo: valid values are dqn, ppo"),
        ({"n_steps": 8}, "n_steps is a PPO option: not valid with algo dqn"),
        ({"algo": "ppo", "burn_in": 8}, "burn_in is a DQN option"),
        ({"algo": "ppo", "archive_eps": 0.3}, "--archive-eps is not available with algo ppo"),
        ({"replay_size": 50, "num_envs": 4}, "replay_size: too small for 4 envs"),
        ({"algo": "ppo", "num_envs": 1, "n_steps": 2, "minibatches": 4}, "rollout holds 2"),
        ({"eps_start": 0.1, "eps_end": 0.5}, "bad epsilon range 0.1 -> 0.5"),
        ({"net_width": 0.01}, "net_width: must be in [0.125, 4.0]"),
        ({"algo": "ppo", "net_width": 8}, "net_width: must be in [0.125, 4.0]"),
        ({"stages": "1 2", "num_envs": 4}, "8 stages need at least as many envs"),
        ({"stage": "1-1\n"}, "unknown stage '1-1\\n'"),
        ({"exploration": "greedy"}, "valid values are epsilon, boltzmann"),
        ({"ray_address": ":"}, "expected auto, local or HOST:PORT"),
        ({"sticky": 1.0}, "bad value 1.0 for sticky: must be in [0.0, 0.99]"),
        ({"archive_backward_stride": 20}, "archive_backward_stride"),
        ({"stall_steps": -1}, "stall_steps"),
        ({"lr_end_frac": 1.5}, "bad value 1.5 for lr_end_frac: must be in [0.0, 1.0]"),
        ({"policy_ema": -0.1}, "bad value -0.1 for policy_ema: must be in [0.0, 1.0]"),
        ({"reset_every": -5}, "bad value -5 for reset_every: must be >= 0"),
        ({"n_step_end": -1}, "bad value -1 for n_step_end: must be >= 0"),
        ({"gamma_end": 1.5}, "bad value 1.5 for gamma_end: must be in [0.0, 1.0]"),
        ({"anneal_steps": -1}, "bad value -1 for anneal_steps: must be >= 0"),
        ({"n_step_end": 400, "replay_size": 500}, "replay_size: too small"),
        ({"policy_average": 65}, "bad value 65 for policy_average: must be in [0, 64]"),
        ({"policy_average_every": 0}, "bad value 0 for policy_average_every: must be >= 1"),
        ({"policy_average": 3, "policy_ema": 0.1}, "policy_ema and policy_average both"),
        ({"reset_shrink": 1.5}, "bad value 1.5 for reset_shrink: must be in [0.0, 1.0]"),
        ({"ray_address": "auto", "num_envs": 3}, None),  # num_envs follows the actors
    ],
)
def test_bad_values_are_named(values: dict, needle: str | None) -> None:
    if needle is None:
        cfg = build_config(values)
        assert cfg.run.num_envs == cfg.dist.num_actors * cfg.dist.envs_per_actor
        return
    with pytest.raises(ConfigError) as caught:
        build_config(values)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_stage_lists_expand_worlds_and_drop_repeats() -> None:
    assert expand_stages("1 2-1, 1-2") == ["1-1", "1-2", "1-3", "1-4", "2-1"]
    assert build_config({"stages": "2-2 2-2", "num_envs": 2}).run.stage_list() == ["2-2"]
    assert TrainConfig().run.stage_list() == ["1-1"]
    with pytest.raises(ValueError, match="unknown stage '9-1'"):
        expand_stages("9")


def test_yaml_files_hold_flat_keys(tmp_path: Path) -> None:
    good = tmp_path / "c.yaml"
    good.write_text("total-steps: 1000\nstages: [1-1, 1-2]\ndueling: true\n")
    assert load_yaml(good) == {"total_steps": 1000, "stages": "1-1 1-2", "dueling": True}
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_yaml(empty) == {}
    for text, needle in [
        ("- a list\n", "must hold a mapping"),
        ("key: [unclosed\n", "cannot read config file"),
        ("learning_rate: 1\n", "unknown config key 'learning_rate'"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=needle):
            load_yaml(bad)


def test_every_preset_is_a_valid_config() -> None:
    for name in presets.names():
        build_config(load_yaml(presets.preset_path(name)))


def test_robust_1_1_is_clear_1_1_with_the_robustness_levers_only() -> None:
    """What the docs compare (runs I, U, V, AA and AB) differs only in the levers measured."""
    clear = load_yaml(presets.preset_path("clear-1-1"))
    robust = load_yaml(presets.preset_path("robust-1-1"))
    levers = {"sticky", "prev_action", "archive_backward", "archive_backward_stride"}
    levers |= {"replay_ratio", "eval_episodes", "policy_average", "policy_average_every"}
    levers |= {"eval_robust"}
    same = {k: v for k, v in clear.items() if k not in levers}
    assert {k: v for k, v in robust.items() if k not in levers} == same
    assert levers <= robust.keys() and robust["eval_robust"] is True
