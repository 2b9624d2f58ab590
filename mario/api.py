"""The Python API: what the ``mario`` command does, for notebooks and scripts.

    import mario

    run = mario.train("quickstart", total_steps=5_000)      # a run folder, like `mario train`
    agent = mario.load_agent(run)                            # either algorithm's checkpoint
    episode = mario.play(agent, episodes=1)[0]               # every frame in episode.screens
    mario.write_video(episode.screens, "mario.mp4")          # or .gif
    mario.evaluate(agent, episodes=5)                        # like `mario eval --json`

The command line is a thin layer over the same functions. Errors are typed instead of
one-line messages: a bad argument or config value raises :class:`mario.ConfigError` naming
the parameter, a missing, damaged or foreign checkpoint (or shipped agent)
:class:`mario.CheckpointError`. :func:`train` also runs in a thread
other than the main one: there it installs no signal handlers (stop signals then reach only
the main thread's own handling), and it raises :class:`RuntimeError` when a run ends
without finishing cleanly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mario.config import EVAL_SEED, ConfigError
from mario.playing.agents import Agent
from mario.playing.episodes import Episode


def train(
    preset: str | None = None,
    *,
    config: str | Path | None = None,
    resume: str | Path | None = None,
    **options: Any,
) -> Path:
    """Train as ``mario train`` does and return the run folder.

    ``preset`` (a name from ``mario/presets``) and ``config`` (a YAML file) set several
    keys; ``options`` are config keys (``total_steps=5_000, algo="ppo", ...``); ``resume``
    continues a run folder or checkpoint. Blocks until the run ends (Ctrl-C stops it with a
    checkpoint). Raises :class:`RuntimeError` if the run ended without finishing cleanly
    (diverged, disk full: the message names the exit status).
    """
    from mario.config import load_yaml
    from mario.presets import preset_path
    from mario.training.runner import Runner
    from mario.training.setup import prepare_run

    yaml_values: dict[str, Any] = {}
    if preset:
        yaml_values.update(load_yaml(preset_path(preset)))
    if config:
        yaml_values.update(load_yaml(Path(config)))
    setup = prepare_run(
        options, yaml_values=yaml_values, resume=None if resume is None else str(resume)
    )
    runner = Runner(setup, argv=["(python api)", *(f"{k}={v}" for k, v in options.items())])
    status = runner.run()
    if status != 0:
        raise RuntimeError(f"training ended with exit status {status} (see the message above)")
    return setup.run_dir


def load_agent(path: str | Path, *, device: str = "auto", seed: int = 0) -> Agent:
    """The agent of a run folder (its newest checkpoint) or a checkpoint, DQN or PPO."""
    from mario.playing.agents import load_agent as load

    return load(path, device=device, seed=seed)


def random_agent(actions: str = "simple", seed: int = 0) -> Agent:
    """Uniform random actions: the baseline."""
    from mario.playing.agents import random_agent as make

    return make(actions, seed)


def play(
    agent: Agent,
    stage: str | None = None,
    *,
    episodes: int = 1,
    seed: int = EVAL_SEED,
    epsilon: float = 0.0,
    max_steps: int = 5000,
    sticky: float = 0.0,
    frames: bool = True,
) -> list[Episode]:
    """Play greedy episodes from the stage's real start (default: the agent's stage); with
    ``frames`` each :class:`~mario.playing.episodes.Episode` keeps every emulator frame in
    ``screens`` ((240, 256, 3) uint8, 60 per second)."""
    from mario.game.options import parse_stage
    from mario.playing.episodes import check_play_args, play_episode

    check_play_args(
        episodes=episodes, seed=seed, epsilon=epsilon, max_steps=max_steps, sticky=sticky
    )
    stage = stage or agent.config.run.stage
    try:
        parse_stage(stage)
    except ValueError as error:
        raise ConfigError(f"bad value for stage: {error}") from None
    return [
        play_episode(
            agent,
            stage,
            seed=seed + k,
            epsilon=epsilon,
            max_steps=max_steps,
            sticky=sticky,
            keep_screens=frames,
        )
        for k in range(episodes)
    ]


def evaluate(
    agent: Agent,
    stages: str | Sequence[str] | None = None,
    *,
    episodes: int = 10,
    seed: int = EVAL_SEED,
    epsilon: float = 0.0,
    max_steps: int = 5000,
    sticky: float = 0.0,
) -> dict[str, Any]:
    """Per stage: mean and median return, mean and max x_pos, flag rate, and the runs.
    ``stages``: names or worlds (``"1-1"``, ``"1"``, ``["1-1", "1-2"]``; default: the
    agent's stage)."""
    from mario.playing.episodes import evaluate as run_evaluation
    from mario.playing.episodes import stage_names

    names = stage_names(agent.config.run.stage if stages is None else stages)
    return run_evaluation(
        agent, names, episodes, seed=seed, epsilon=epsilon, max_steps=max_steps, sticky=sticky
    )


def write_video(
    frames: Sequence[np.ndarray], path: str | Path, *, fps: int = 60, scale: int = 1
) -> Path:
    """Write full-colour frames to an H.264 MP4, or a looping GIF for a ``.gif`` path (its
    folder is created if missing)."""
    from mario.playing.episodes import gif_fps
    from mario.playing.video import VideoWriter

    Path(path).parent.mkdir(parents=True, exist_ok=True)

    with VideoWriter(path, fps=fps, scale=scale, gif_fps=gif_fps(fps)) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)
