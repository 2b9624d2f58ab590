"""Playing episodes with a trained (or random) agent: evaluation and replay videos.

One path serves ``mario eval``, ``mario replay`` and the evaluations during training: the
env comes from :func:`mario.make_env` with the checkpoint's own pipeline settings, and the
actions from :class:`mario.policy.Policy`. Videos get every emulator frame through the env's
``frame_callback``, while the network sees the processed stack.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mario.checkpoint import CheckpointError, load_checkpoint
from mario.config import TrainConfig, build_config
from mario.env import action_label, action_set, make_env, parse_stage
from mario.net import MarioNet, resolve_device
from mario.policy import Policy
from mario.run_folder import CHECKPOINTS, run_dir_of

if TYPE_CHECKING:
    from mario.train import Trainer
    from mario.video import VideoFormat, VideoWriter


@dataclass
class Episode:
    """The outcome of one played episode."""

    stage: str
    seed: int
    ret: float
    x_pos: int
    flag: bool
    steps: int
    frames: int


@dataclass
class Agent:
    """A policy with the config it was trained with (``step``/``path`` of its checkpoint)."""

    policy: Policy
    config: TrainConfig
    step: int | None = None
    path: Path | None = None


def load_agent(path: str | Path, *, device: str = "auto", seed: int = 0) -> Agent:
    """The greedy agent of a checkpoint (or a run folder's newest complete checkpoint)."""
    target = Path(path)
    if not target.exists():
        raise ValueError(f"{path}: no such run folder or checkpoint")
    torch_device = resolve_device(device)  # before the (slow) load
    state, info, warnings = load_checkpoint(target, fallback=True)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        config = build_config(state["config"])
        step = int(state["counters"]["step"])
        net = _net_from_state(state)
    except (KeyError, TypeError, RuntimeError) as error:
        # a state.pt that passed its checksum but is not a mario training state
        detail = f"no {error}" if isinstance(error, KeyError) else str(error).splitlines()[0]
        raise CheckpointError(
            f"{info.state_path}: incompatible: not a mario checkpoint ({detail})"
        ) from None
    net.to(torch_device).eval()
    if torch_device.type == "cpu":
        # one observation at a time: extra threads only add synchronisation (5x slower on a
        # busy 2-core machine)
        torch.set_num_threads(1)
    return Agent(Policy(net, net.n_actions, seed=seed), config, step, info.path)


def _net_from_state(state: dict[str, Any]) -> MarioNet:
    signature = state["net_signature"]
    net = MarioNet(
        int(signature["n_actions"]),
        int(signature["in_channels"]),
        dueling=bool(signature["dueling"]),
    )
    net.load_state_dict(state["net"])
    return net


def random_agent(actions: str = "simple", seed: int = 0) -> Agent:
    """The baseline: uniform random actions, default pipeline settings."""
    config = build_config(actions=actions)
    return Agent(Policy(None, len(action_set(actions)), seed=seed), config)


def play_episode(
    agent: Agent,
    stage: str,
    *,
    seed: int,
    epsilon: float = 0.0,
    max_steps: int = 5000,
    video: VideoWriter | None = None,
) -> Episode:
    """One episode; with ``video`` every emulator frame (and the HUD data) is written."""
    cfg = agent.config
    env_kwargs = cfg.env_kwargs() | {"max_episode_steps": max_steps}
    env = make_env(stage, **env_kwargs)
    buttons = action_set(cfg.actions)
    labels = [action_label(b) for b in buttons]
    if video is not None:
        from mario.video import Hud
    frames = 0
    hud: Any = None
    current_obs: np.ndarray | None = None

    def on_frame(screen: np.ndarray) -> None:
        nonlocal frames
        frames += 1
        if video is not None:
            video.write(screen, hud, current_obs)

    env.unwrapped.frame_callback = on_frame
    try:
        obs, info = env.reset(seed=seed)
        ret, steps = 0.0, 0
        while True:
            actions, q = agent.policy.act(obs[None], epsilon, greedy=epsilon == 0.0)
            action = int(actions[0])
            if video is not None:
                current_obs = obs
                hud = Hud(
                    step=steps,
                    x_pos=int(info["x_pos"]),
                    episode_return=ret,
                    action_name=labels[action],
                    q_values=None if q is None else q[0].tolist(),
                    action_names=labels,
                    chosen=action,
                )
            obs, reward, terminated, truncated, info = env.step(action)
            ret += float(reward)
            steps += 1
            if terminated or truncated:
                break
    finally:
        env.close()
    return Episode(stage, seed, ret, int(info["x_pos"]), bool(info["flag_get"]), steps, frames)


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
    seed: int = 0,
    epsilon: float = 0.0,
    max_steps: int = 5000,
    video_path: Path | None = None,
    overlay: bool = True,
) -> dict[str, Any]:
    """Greedy (or ε) episodes per stage; the first episode can be recorded to a video."""
    from mario.video import VideoWriter

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
                        video=video,
                    )
                )
            except BaseException:
                if video is not None:
                    video.abort()
                raise
            if video is not None:
                video.close()
        per_stage[stage] = summarize(played) | {"runs": [asdict(e) for e in played]}
    return per_stage


def evaluate_during_training(trainer: Trainer) -> dict[str, Any]:
    """A short greedy evaluation in its own env, with an MP4 of the first episode."""
    cfg = trainer.cfg
    agent = Agent(Policy(trainer.net, trainer.net.n_actions, seed=cfg.seed), cfg, trainer.step)
    videos = trainer.run_dir / "videos"
    videos.mkdir(exist_ok=True)
    video = videos / f"eval-step-{trainer.step:09d}.mp4"
    result = evaluate(
        agent,
        [cfg.stage],
        cfg.eval_episodes,
        seed=10_000 + trainer.step,
        max_steps=cfg.max_episode_steps or 5000,
        video_path=video,
    )
    summary = {k: v for k, v in result[cfg.stage].items() if k != "runs"}
    return summary | {"video": str(video)}


# --------------------------------------------------------------------------- CLI commands


def _agent_from_args(args: argparse.Namespace, actions: str = "simple") -> Agent:
    if args.random and args.path:
        raise ValueError("give either a checkpoint PATH or --random, not both")
    if args.random:
        resolve_device(args.device)  # a bad --device is an error with or without a network
        return random_agent(actions, seed=args.seed)
    if not args.path:
        raise ValueError("missing PATH: give a run folder or checkpoint, or --random")
    return load_agent(args.path, device=args.device, seed=args.seed)


def _replay_output(args: argparse.Namespace, agent: Agent, stage: str) -> tuple[Path, VideoFormat]:
    """The file ``mario replay`` writes and its format (GIF with --gif or a .gif --out).

    Default: ``RUN/videos/replay-step-N.mp4`` for a checkpoint of a run folder (beside the
    checkpoint folder otherwise), ``random-STAGE.mp4`` in the working folder for --random.
    """
    from mario.video import VideoOutputError

    if args.out:
        out = Path(args.out)
        is_gif = out.suffix.lower() == ".gif"
        if args.gif and not is_gif:
            raise ValueError(f"--gif writes a GIF: give --out a .gif name, not {args.out!r}")
        fmt: VideoFormat = "gif" if is_gif else "mp4"
        if agent.path is not None:
            parent = agent.path.parent
            guarded = parent if parent.name == CHECKPOINTS else agent.path
            if guarded.resolve() in out.resolve().parents:
                raise ValueError(
                    f"--out {args.out} is inside the checkpoint folder {guarded}: "
                    "choose a path outside it"
                )
        return out, fmt
    fmt = "gif" if args.gif else "mp4"
    if agent.path is None:
        return Path(f"random-{stage}.{fmt}"), fmt
    videos = run_dir_of(agent.path) / "videos"
    try:
        videos.mkdir(exist_ok=True)
    except OSError as error:
        raise VideoOutputError(
            f"cannot create the video folder {videos}: {error.strerror or error} "
            "(choose another file with --out)"
        ) from None
    return videos / f"replay-step-{agent.step:09d}.{fmt}", fmt


def _gif_fps(fps: int) -> int:
    """The GIF frame rate for ``fps`` input frames: its largest divisor up to 30 (GIF delays are
    whole 1/100 s and browsers slow down faster ones), so whole frames are dropped evenly."""
    return max(d for d in range(1, min(30, fps) + 1) if fps % d == 0)


def replay_command(args: argparse.Namespace) -> int:
    """``mario replay``: render episodes to an MP4 (or GIF) and print what happened."""
    from mario.video import VideoWriter

    agent = _agent_from_args(args)
    stage = args.stage or agent.config.stage
    parse_stage(stage)
    out, fmt = _replay_output(args, agent, stage)
    writer = VideoWriter(
        out,
        fps=args.fps,
        scale=args.scale,
        fmt=fmt,
        overlay=args.overlay,
        agent_view=args.agent_view,
        gif_fps=_gif_fps(args.fps),
    )
    episodes = []
    with writer:
        for k in range(args.episodes):
            episodes.append(
                play_episode(
                    agent,
                    stage,
                    seed=args.seed + k,
                    epsilon=args.epsilon,
                    max_steps=args.max_steps,
                    video=writer,
                )
            )
    print(str(out))
    for k, e in enumerate(episodes):
        print(
            f"episode {k + 1}: stage {e.stage} x_pos {e.x_pos} return {e.ret:.1f} "
            f"flag {e.flag} steps {e.steps} frames {e.frames}"
        )
    return 0


def eval_command(args: argparse.Namespace) -> int:
    """``mario eval``: greedy evaluation per stage; ``--json`` prints one object."""
    agent = _agent_from_args(args, actions=args.actions)
    stages = args.stages or [agent.config.stage]
    result = evaluate(
        agent, stages, args.episodes, seed=args.seed, epsilon=args.epsilon, max_steps=args.max_steps
    )
    report = {
        "checkpoint": str(agent.path) if agent.path else "random",
        "step": agent.step,
        "episodes": args.episodes,
        "epsilon": args.epsilon,
        "stages": result,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"checkpoint: {report['checkpoint']} (step {agent.step})")
    for stage, s in result.items():
        for k, run in enumerate(s["runs"]):
            print(
                f"  {stage} episode {k + 1}: x_pos {run['x_pos']} return {run['ret']:.1f} "
                f"flag {run['flag']} steps {run['steps']}"
            )
        print(
            f"{stage}: return mean {s['return_mean']} median {s['return_median']}, "
            f"x_pos mean {s['x_pos_mean']} max {s['x_pos_max']}, flag rate {s['flag_rate']}"
        )
    return 0
