"""Playing episodes with a trained (or random) agent: evaluation, replay videos, frames.

One path serves ``mario eval``, ``mario replay``, the evaluations during training and the
Python API: the env comes from :func:`mario.make_env` with the checkpoint's own pipeline
settings (always from the stage's real start), and the actions from the algorithm's
:class:`~mario.algos.base.Policy`. Videos get every emulator frame through the env's
``frame_callback``, while the network sees the processed stack.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mario.algos.base import ActionValues
from mario.config import (
    EVAL_SEED,
    MAX_EPISODE_STEPS,
    MAX_EPISODES,
    MAX_SEED,
    ConfigError,
    expand_stages,
)
from mario.errors import brief
from mario.game.env import action_label, action_set, make_env, parse_stage
from mario.game.options import MAX_STICKY, check_sticky
from mario.playing.agents import Agent

if TYPE_CHECKING:
    from mario.playing.video import VideoWriter

StepCallback = Callable[[int, int, "ActionValues | None", dict[str, Any], Any], None]
"""``on_step(step, action, values, info, game)`` of :func:`play_episode`."""


@dataclass
class Episode:
    """The outcome of one played episode (``screens``: every emulator frame, if kept)."""

    stage: str
    seed: int
    ret: float
    x_pos: int
    flag: bool
    steps: int
    frames: int
    screens: list[np.ndarray] = field(default_factory=list, repr=False)


def check_play_args(
    *,
    episodes: int = 1,
    seed: int = 0,
    epsilon: float = 0.0,
    max_steps: int = 1,
    sticky: float = 0.0,
) -> None:
    """:class:`~mario.config.ConfigError` naming the first argument of an evaluation or
    replay that is out of its bounds (the same as ``mario eval``'s options)."""
    bounds: list[tuple[str, Any, float, float]] = [
        ("episodes", episodes, 1, MAX_EPISODES),
        ("seed", seed, 0, MAX_SEED),
        ("max_steps", max_steps, 1, MAX_EPISODE_STEPS),
    ]
    for name, value, low, high in bounds:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ConfigError(f"bad value {brief(value)} for {name}: expected a whole number")
        if not low <= value <= high:
            raise ConfigError(f"bad value {brief(value)} for {name}: must be in [{low}, {high}]")
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not 0 <= epsilon <= 1:
        raise ConfigError(f"bad value {brief(epsilon)} for epsilon: must be in [0, 1]")
    try:
        check_sticky(sticky)
    except ValueError:
        raise ConfigError(
            f"bad value {brief(sticky)} for sticky: must be in [0, {MAX_STICKY}]"
        ) from None


def stage_names(stages: str | Sequence[str]) -> list[str]:
    """``stages`` (names and worlds: ``"1-1 1-2"``, ``["1"]``) as a list of stage names;
    :class:`~mario.config.ConfigError` naming ``stages`` otherwise."""
    if isinstance(stages, str):
        stages = [stages]
    if not isinstance(stages, Sequence) or not all(isinstance(s, str) for s in stages):
        raise ConfigError(f"bad value {brief(stages)} for stages: expected stage names")
    try:
        names = expand_stages(" ".join(stages))
    except ValueError as error:
        raise ConfigError(f"bad value for stages: {error}") from None
    if not names:
        raise ConfigError("bad value for stages: no stage given (e.g. '1-1' or '1')")
    return names


def play_episode(
    agent: Agent,
    stage: str,
    *,
    seed: int,
    epsilon: float = 0.0,
    max_steps: int = 5000,
    sticky: float = 0.0,
    video: VideoWriter | None = None,
    keep_screens: bool = False,
    on_screen: Callable[[np.ndarray], None] | None = None,
    on_step: StepCallback | None = None,
) -> Episode:
    """One episode from the stage's real start; ``sticky``: sticky actions' probability (the
    robust evaluation's 0.25), ``epsilon``: random actions'. With ``video`` every emulator
    frame (and the HUD data) is written; ``keep_screens`` keeps a copy of every frame in the result;
    ``on_step(step, action, values, info, game)`` sees each chosen action before it is
    played (``game``: the :class:`~mario.game.env.MarioEnv`, e.g. for
    ``scripts/trace_episode.py``)."""
    check_play_args(seed=seed, epsilon=epsilon, max_steps=max_steps, sticky=sticky)
    cfg = agent.config
    env_kwargs = cfg.env.kwargs() | {"max_episode_steps": max_steps, "sticky": sticky}
    env = make_env(stage, **env_kwargs)
    labels = [action_label(b) for b in action_set(cfg.env.actions)]
    if video is not None:
        from mario.playing.video import Hud
    frames = 0
    screens: list[np.ndarray] = []
    hud: Any = None
    current_obs: np.ndarray | None = None
    before_first: list[np.ndarray] = []  # the reset's frames wait for the first decision's HUD

    def on_frame(screen: np.ndarray) -> None:
        nonlocal frames
        frames += 1
        if video is not None:
            if hud is None:
                before_first.append(screen.copy())
            else:
                video.write(screen, hud, current_obs)
        if keep_screens:
            screens.append(screen.copy())
        if on_screen is not None:
            on_screen(screen)

    env.unwrapped.frame_callback = on_frame  # type: ignore[attr-defined]
    try:
        obs, info = env.reset(seed=seed)
        ret, steps = 0.0, 0
        while True:
            actions, values = agent.policy.act(obs[None], explore=epsilon)
            action = int(actions[0])
            seen = values[0] if values else None
            if on_step is not None:
                on_step(steps, action, seen, info, env.unwrapped)
            if video is not None:
                current_obs = obs
                hud = Hud(
                    step=steps,
                    x_pos=int(info["x_pos"]),
                    episode_return=ret,
                    action_name=labels[action],
                    values=None if seen is None else seen.values,
                    action_names=labels,
                    chosen=action,
                    values_kind="Q" if seen is None else seen.kind,
                    state_value=None if seen is None else seen.state_value,
                )
                for screen in before_first:  # frame 0 shows what the agent chose on it
                    video.write(screen, hud, current_obs)
                before_first.clear()
            obs, reward, terminated, truncated, info = env.step(action)
            ret += float(reward)
            steps += 1
            if terminated or truncated:
                break
    finally:
        env.close()
    x, flag = int(info["x_pos"]), bool(info["flag_get"])
    return Episode(stage, seed, ret, x, flag, steps, frames, screens)


def summarize(episodes: list[Episode]) -> dict[str, Any]:
    returns = [e.ret for e in episodes]
    xs = [e.x_pos for e in episodes]
    return {
        "episodes": len(episodes),
        "return_mean": round(statistics.fmean(returns), 3),
        "return_median": round(statistics.median(returns), 3),
        "x_pos_mean": round(statistics.fmean(xs), 2),
        "x_pos_max": max(xs),
        "flag_rate": round(sum(e.flag for e in episodes) / len(episodes), 4),
    }


def evaluate(
    agent: Agent,
    stages: list[str],
    episodes: int,
    *,
    seed: int = EVAL_SEED,
    epsilon: float = 0.0,
    max_steps: int = 5000,
    sticky: float = 0.0,
    video_path: Path | None = None,
    overlay: bool = True,
) -> dict[str, Any]:
    """Greedy (or ε, or sticky) episodes per stage; the first episode can be recorded to a
    video."""
    from mario.playing.video import VideoWriter

    check_play_args(
        episodes=episodes, seed=seed, epsilon=epsilon, max_steps=max_steps, sticky=sticky
    )
    per_stage: dict[str, Any] = {}
    for stage in stages:
        parse_stage(stage)
    for stage in stages:
        played = []
        for k in range(episodes):
            video = None
            if video_path is not None and k == 0 and stage == stages[0]:
                video = VideoWriter(video_path, scale=1, overlay=overlay)
            try:
                played.append(
                    play_episode(
                        agent,
                        stage,
                        seed=seed + k,
                        epsilon=epsilon,
                        max_steps=max_steps,
                        sticky=sticky,
                        video=video,
                    )
                )
            except BaseException:
                if video is not None:
                    video.abort()
                raise
            if video is not None:
                video.close()
        per_stage[stage] = summarize(played) | {
            "runs": [{k: v for k, v in asdict(e).items() if k != "screens"} for e in played]
        }
    return per_stage


#: The robust evaluation's perturbed settings, each beside the deterministic one: random
#: actions as in the Nature DQN paper's evaluations, sticky actions as in Machado et al.
#: 2018 (the ALE's default since). A deterministic evaluation's episodes are near copies of
#: each other (the idle frames at reset are their only randomness); these are not.
ROBUST: dict[str, tuple[float, float]] = {"epsilon_0.05": (0.05, 0.0), "sticky_0.25": (0.0, 0.25)}
"""``{name: (epsilon, sticky)}``."""


def evaluate_robust(
    agent: Agent,
    stages: list[str],
    episodes: int,
    *,
    seed: int = EVAL_SEED,
    max_steps: int = 5000,
) -> dict[str, dict[str, Any]]:
    """:func:`evaluate` deterministic (``"deterministic"``) and under each of
    :data:`ROBUST`'s perturbations, on the same seeds: ``{setting: {stage: summary}}``."""
    out = {"deterministic": evaluate(agent, stages, episodes, seed=seed, max_steps=max_steps)}
    for name, (epsilon, sticky) in ROBUST.items():
        out[name] = evaluate(
            agent, stages, episodes, seed=seed, max_steps=max_steps, epsilon=epsilon, sticky=sticky
        )
    return out


def record(
    agent: Agent,
    stage: str,
    writer: VideoWriter,
    *,
    episodes: int = 1,
    seed: int = EVAL_SEED,
    epsilon: float = 0.0,
    max_steps: int = 5000,
    sticky: float = 0.0,
) -> list[Episode]:
    """Play ``episodes`` into one video (``mario replay``); closes the writer, or aborts it
    (nothing left at its path) if anything fails."""
    played = []
    with writer:
        check_play_args(
            episodes=episodes, seed=seed, epsilon=epsilon, max_steps=max_steps, sticky=sticky
        )
        for k in range(episodes):
            played.append(
                play_episode(
                    agent,
                    stage,
                    seed=seed + k,
                    epsilon=epsilon,
                    max_steps=max_steps,
                    sticky=sticky,
                    video=writer,
                )
            )
    return played


def gif_fps(fps: int) -> int:
    """The GIF frame rate for ``fps`` input frames: its largest divisor up to 30 (GIF delays are
    whole 1/100 s and browsers slow down faster ones), so whole frames are dropped evenly."""
    return max(d for d in range(1, min(30, fps) + 1) if fps % d == 0)
