"""The game env and make_env/make_vec_env on the real emulator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import mario
from mario.game.env import ACTION_SETS, STAGES, MarioEnv, StallLimit

RIGHT = 1  # "right" in SIMPLE_MOVEMENT


def raw_env(stage: str = "1-1", actions: str = "simple"):
    return mario.make_env(
        stage, actions=actions, frame_skip=1, grayscale=False, resize=None, stack=1
    )


def run_until_done(env, action: int, limit: int = 5000):
    for step in range(1, limit + 1):
        obs, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return step, obs, reward, terminated, truncated, info
    raise AssertionError("episode did not end")


def test_default_pipeline_shapes_and_dtypes() -> None:
    env = mario.make_env("1-1")
    obs, info = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert env.observation_space.shape == (4, 84, 84)
    assert env.observation_space.contains(obs)
    assert env.action_space.n == len(ACTION_SETS["simple"]) == 7
    assert set(info) == {
        "coins",
        "flag_get",
        "life",
        "score",
        "stage",
        "status",
        "time",
        "world",
        "x_pos",
        "y_pos",
    }
    obs, reward, terminated, truncated, info = env.step(RIGHT)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert isinstance(reward, float) and terminated is False and truncated is False
    assert isinstance(info["x_pos"], int) and isinstance(info["flag_get"], bool)
    env.close()


def test_raw_and_colour_pipelines() -> None:
    env = raw_env()
    obs, _ = env.reset()
    assert obs.shape == (240, 256, 3) and obs.dtype == np.uint8
    assert isinstance(env.unwrapped, MarioEnv)
    colour = mario.make_env("1-1", grayscale=False)
    obs, _ = colour.reset()
    assert obs.shape == (4, 84, 84, 3) and obs.dtype == np.uint8
    big = mario.make_env("1-1", resize=None, stack=2)
    assert big.reset()[0].shape == (2, 240, 256)


def test_pipeline_equals_processing_the_raw_frames() -> None:
    """make_env's default obs is exactly skip → gray → area-resize → stack of raw frames."""
    piped, raw = mario.make_env("1-1"), raw_env()
    obs, _ = piped.reset()
    frame, _ = raw.reset()

    def process(f: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
        return cv2.resize(gray, (84, 84), interpolation=cv2.INTER_AREA)

    assert np.array_equal(obs[-1], process(frame))
    actions = [RIGHT] * 6 + [2] * 5 + [0] * 3  # right, right+A (jump), noop
    history = [process(frame)] * 4
    for action in actions:
        obs, reward, *_ = piped.step(action)
        total = 0.0
        for _ in range(4):
            frame, r, *_ = raw.step(action)
            total += r
        history.append(process(frame))
        assert reward == total
        assert np.array_equal(obs, np.stack(history[-4:]))
    # render is the full-colour frame whatever the observation pipeline
    assert np.array_equal(piped.render(), frame)
    assert piped.render().shape == (240, 256, 3)


def test_frame_callback_sees_every_emulator_frame() -> None:
    env = mario.make_env("1-1", frame_skip=4)
    frames: list[np.ndarray] = []
    env.unwrapped.frame_callback = lambda screen: frames.append(screen.copy())
    env.reset()
    assert len(frames) == 1
    for _ in range(5):
        env.step(RIGHT)
    assert len(frames) == 1 + 5 * 4
    assert frames[-1].shape == (240, 256, 3)
    assert np.array_equal(frames[-1], env.render())
    assert not np.array_equal(frames[1], frames[-1])


def test_death_is_terminated_not_truncated() -> None:
    env = mario.make_env("1-1")
    env.reset()
    # running right without jumping meets the first goomba
    _, _, reward, terminated, truncated, info = run_until_done(env, RIGHT)
    assert terminated and not truncated
    assert reward <= -10  # the death penalty (-25, clipped to -15) dominates
    assert not info["flag_get"]


def test_death_penalty_adds_to_the_dying_step_only() -> None:
    """``death_penalty`` changes the reward of the step that ends in death and no other; a
    time limit is not a death."""
    returns = {}
    for penalty in (0.0, 40.0):
        env = mario.make_env("1-1", death_penalty=penalty, seed=3)
        env.reset()
        rewards = []
        while True:
            _, reward, terminated, truncated, info = env.step(RIGHT)
            rewards.append(float(reward))
            if terminated or truncated:
                break
        assert terminated and not info["flag_get"]
        returns[penalty] = rewards
    clean, punished = returns[0.0], returns[40.0]
    assert len(clean) == len(punished) > 10
    assert punished[:-1] == clean[:-1] and punished[-1] == clean[-1] - 40.0
    env = mario.make_env("1-1", death_penalty=40.0, max_episode_steps=5, seed=3)
    env.reset()
    assert [float(env.step(RIGHT)[1]) for _ in range(5)] == clean[:5]


def test_max_episode_steps_truncates() -> None:
    env = mario.make_env("1-1", max_episode_steps=5)
    env.reset()
    steps, *_, terminated, truncated, _ = run_until_done(env, 0)
    assert steps == 5 and truncated and not terminated


def test_a_stall_truncates_after_its_steps_without_progress() -> None:
    """``stall_steps``: standing still ends the episode (truncated, ``stalled``) after exactly
    that many steps; running right keeps it going, and it never hides a death."""
    env = mario.make_env("1-1", stall_steps=12, seed=0)
    _, info = env.reset()
    assert info["stalled"] is False
    steps, *_, terminated, truncated, info = run_until_done(env, 0)  # NOOP: Mario stands
    assert steps == 12 and truncated and not terminated and info["stalled"]
    env.reset()
    infos = [env.step(RIGHT)[4] for _ in range(30)]  # running: a new furthest x every step or so
    assert not any(i["stalled"] for i in infos)
    env.reset()
    *_, terminated, truncated, info = run_until_done(env, RIGHT)  # into the first goomba
    assert terminated and not truncated and not info["stalled"]
    with pytest.raises(ValueError, match="steps must be >= 1"):
        StallLimit(mario.make_env("1-1"), 0)


def test_equal_seeds_and_actions_are_deterministic() -> None:
    def rollout(seed: int) -> tuple[list[np.ndarray], list[float]]:
        env = mario.make_env("1-1", seed=seed, noop_max=30)
        obs, _ = env.reset()
        rng = np.random.default_rng(0)
        observations, rewards = [obs], []
        for action in rng.integers(0, 7, 40):
            obs, reward, terminated, truncated, _ = env.step(int(action))
            observations.append(obs)
            rewards.append(reward)
            if terminated or truncated:
                break
        return observations, rewards

    a, b, c = rollout(1), rollout(1), rollout(2)
    assert len(a[0]) == len(b[0])
    assert all(np.array_equal(x, y) for x, y in zip(a[0], b[0], strict=True))
    assert a[1] == b[1]
    # a different seed starts after a different number of idle frames
    assert any(not np.array_equal(x, y) for x, y in zip(a[0], c[0], strict=False))


@pytest.mark.parametrize("stage", ["1-2", "4-1", "8-4"])
def test_other_stages_start_where_asked(stage: str) -> None:
    env = mario.make_env(stage)
    _, info = env.reset()
    world, level = map(int, stage.split("-"))
    assert (info["world"], info["stage"]) == (world, level)


def test_full_game_continues_after_a_death() -> None:
    env = mario.make_env("all")
    _, info = env.reset()
    assert (info["world"], info["stage"], info["life"]) == (1, 1, 2)
    for _ in range(400):
        _, _, terminated, truncated, info = env.step(RIGHT)
        assert not terminated and not truncated
        if info["life"] < 2:
            break
    assert info["life"] == 1  # lost a life, game goes on


def test_stage_list_is_complete() -> None:
    assert len(STAGES) == 32 and STAGES[0] == "1-1" and STAGES[-1] == "8-4"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stage": "9-1"}, r"unknown stage '9-1'.*world W in 1-8.*'all'"),
        ({"stage": "1-5"}, r"unknown stage '1-5'.*stage S in 1-4"),
        ({"stage": "x"}, r"unknown stage 'x'"),
        ({"actions": "jumpy"}, r"unknown action set 'jumpy'.*right_only, simple, complex"),
        ({"frame_skip": 0}, r"frame_skip must be an integer >= 1, got 0"),
        ({"resize": 0}, r"resize must be a positive.*got 0"),
        ({"resize": -84}, r"resize must be a positive.*got -84"),
        ({"stack": 0}, r"stack must be an integer >= 1, got 0"),
        ({"death_penalty": -1.0}, r"death_penalty must be >= 0, got -1.0"),
    ],
)
def test_bad_arguments_name_the_value_and_the_valid_ones(kwargs: dict, message: str) -> None:
    stage = kwargs.pop("stage", "1-1")
    with pytest.raises(ValueError, match=message):
        mario.make_env(stage, **kwargs)
    with pytest.raises(ValueError, match=message):
        mario.make_vec_env(1, stage, **kwargs)


@pytest.mark.parametrize("action", [7, -1, 1.5, "right"])
def test_action_outside_the_action_space(action: object) -> None:
    env = mario.make_env("1-1")
    env.reset()
    with pytest.raises(ValueError, match=r"outside the action space.*0\.\.6.*'simple'"):
        env.step(action)


def test_vector_env_distinct_seeds_and_autoreset() -> None:
    envs = mario.make_vec_env(2, "1-1", seed=10, max_episode_steps=8, noop_max=30)
    try:
        obs, _ = envs.reset()
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
        assert list(envs.get_attr("np_random_seed")) == [10, 11]
        for _ in range(8):
            obs, _, terminated, truncated, info = envs.step(np.array([RIGHT, 0]))
        assert truncated.all() and not terminated.any()
        # same-step auto-reset: obs is the next episode's start, final_obs the last frame
        assert info["_final_obs"].all()
        assert info["final_obs"][0].shape == (4, 84, 84)
        assert all(np.array_equal(o[0], o[-1]) for o in obs)  # fresh stacks
        assert not np.array_equal(info["final_obs"][0][0], info["final_obs"][0][-1])
    finally:
        envs.close()


def test_import_prints_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import mario; mario.make_env('1-1')"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0
    assert result.stdout == "" and result.stderr == ""


def test_screen_copies_take_the_bgrx_fast_path_and_equal_the_screen() -> None:
    """Observations are copied from the emulator's BGRx buffer by OpenCV (~5 µs, not
    NumPy's ~150 µs over the reversed-channel view) on this backend, byte for byte the same."""
    env = MarioEnv("1-1", "simple")
    env.reset()
    for _ in range(40):
        obs, *_ = env.step(3)
    nes = env._nes
    assert nes._bgrx is not None
    np.testing.assert_array_equal(obs, nes.screen)
    assert obs.flags["C_CONTIGUOUS"] and not np.shares_memory(obs, nes.screen)
    env.close()


def test_a_start_from_a_snapshot_is_the_start_from_its_prefix() -> None:
    """``reset(options={"start": prefix, "snapshot": s})`` plays exactly like the replayed
    prefix, frame by frame; on nes-py 9 it replays nothing, on the classic backend (no
    snapshots) ``snapshot()`` is None and the prefix is replayed."""
    from mario.game.rules import SNAPSHOTS

    rng = np.random.default_rng(5)
    player = MarioEnv("1-1", "simple")
    player.reset()
    for action in [3] * 50 + [4] * 20 + [3] * 40:
        player.step(action)
    prefix, snap = bytes(player.history), player.snapshot()
    assert (snap is not None) == SNAPSHOTS
    replayed, loaded = MarioEnv("1-1", "simple"), MarioEnv("1-1", "simple")
    steps = 0
    for _ in range(2):  # the second episode restores the parked state again
        obs_a, info_a = loaded.reset(options={"start": prefix, "snapshot": snap})
        obs_b, info_b = replayed.reset(options={"start": prefix})
        np.testing.assert_array_equal(obs_a, obs_b)
        assert info_a == info_b and info_a["x_pos"] > 250, info_a
        for action in rng.integers(0, 7, 300):
            a, b = loaded.step(int(action)), replayed.step(int(action))
            np.testing.assert_array_equal(a[0], b[0])
            assert a[1:] == b[1:]
            steps += 1
            if a[2]:
                break
    assert steps > 200
    assert replayed.rebuild_frames == len(prefix)
    assert loaded.rebuild_frames == (0 if SNAPSHOTS else len(prefix))
    for env in (player, replayed, loaded):
        env.close()


def test_cli_names_the_backend_and_rejects_an_unknown_reward(tmp_path: Path) -> None:
    from mario.game import backends
    from tests.helpers import assert_one_line_error, run_mario

    version = run_mario("--version")
    assert version.returncode == 0, version.stderr
    assert f"game backend {backends.describe()}" in version.stdout
    bad = run_mario("train", "--reward", "progress", "--run-dir", str(tmp_path / "run"))
    assert_one_line_error(bad, "--reward", "'progress'", "classic", "upstream")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="unknown reward 'progress': valid rewards are classic"):
        mario.make_env("1-1", reward="progress")


def test_sticky_actions_replay_the_previous_frames_buttons_from_the_seed() -> None:
    """Machado et al.'s sticky actions: each frame plays the previous frame's buttons with
    probability ``sticky``, drawn from the env's seed. With the agent alternating between two
    button sets, a frame differs from the agent's choice with probability p / (1 + p) (it
    sticks to a frame that played its own choice, or un-sticks one that did not)."""

    def play(sticky: float, seed: int) -> tuple[list[int], list[int]]:
        env = MarioEnv("1-1", "simple", sticky=sticky)
        env.reset(seed=seed)
        chosen = [6 * (i % 2) for i in range(600)]  # NOOP, left, NOOP, left: stays alive
        for action in chosen:
            env.step(action)
        played = list(env.history)
        env.close()
        return [env._bytes[a] for a in chosen], played

    chosen, plain = play(0.0, seed=3)
    assert plain == chosen  # the game as it is: no random draw at all
    chosen, played = play(0.25, seed=3)
    assert all(p in (c, prev) for c, p, prev in zip(chosen, played, [0, *played], strict=False))
    differs = sum(c != p for c, p in zip(chosen, played, strict=True)) / len(chosen)
    assert abs(differs - 0.25 / 1.25) < 0.05, differs
    assert play(0.25, seed=3)[1] == played and play(0.25, seed=4)[1] != played
    with pytest.raises(ValueError, match="sticky must be in"):
        MarioEnv("1-1", sticky=1.0)
