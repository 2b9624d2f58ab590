"""The ``mario`` console script: parse arguments, call the library, turn errors into one line.

Bad input (unknown option or config key, bad value, missing or corrupt checkpoint,
unwritable output) prints ``mario <command>: error: <what is wrong and what is valid>``,
exits with status 2 and leaves existing checkpoints untouched.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from mario import algos
from mario.config import MAX_ENVS_PER_CORE, MAX_EPISODE_STEPS, MAX_EPISODES, MAX_INT, MAX_SEED
from mario.errors import brief, brief_path
from mario.game.options import MAX_STICKY

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors on one line (no usage dump) with exit status 2 and takes
    no abbreviations (``mario eval --stage 1-2`` would silently be ``--stages``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def unrecognized(self, extra: list[str]) -> NoReturn:
        """Refuse ``extra`` (what no option took), naming the closest option of a typo."""
        options = [o for action in self._actions for o in action.option_strings]
        guesses = [
            difflib.get_close_matches(word.split("=")[0], options, n=1, cutoff=0.6)
            for word in extra
            if word.startswith("--")
        ]
        close = next((g[0] for g in guesses if g), None)
        hint = f" (did you mean {close}?)" if close else ""
        self.error(f"unrecognized arguments: {' '.join(extra)}{hint}")


def _user_errors() -> tuple[type[BaseException], ...]:
    from mario.config import ConfigError
    from mario.storage.checkpoints import CheckpointError

    # ValueError covers the env's argument checks and video.VideoOutputError (unwritable --out);
    # OSError a path the system refuses (too long, no permission) before anything runs
    return (ConfigError, CheckpointError, ValueError, OSError)


# --------------------------------------------------------------------------- train


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    from mario.config import all_keys, build_config, field_of, field_type, key_choices, sections_of

    specs = {spec.name: spec for spec in algos.specs()}
    defaults = {name: build_config({"algo": name}).algorithm for name in specs}
    for key in all_keys():
        flag = "--" + key.replace("_", "-")
        kind = field_type(key)
        if key == "algo":
            valid = ", ".join(f"{name} ({spec.title})" for name, spec in specs.items())
            help_text = f"learning algorithm: {valid} (default: dqn)"
        else:
            _, f = field_of(key)
            owners = [s for s in sections_of(key) if s in specs]
            if len(owners) > 1:
                shown = ", ".join(f"{o} {getattr(defaults[o], key)}" for o in owners)
                help_text = f"{f.metadata['help']} (default: {shown})"
            elif owners:
                help_text = f"{owners[0].upper()}: {f.metadata['help']} (default: {f.default})"
            elif "(default:" in f.metadata["help"] or f.default == "":  # it says the default
                help_text = f.metadata["help"]
            else:
                help_text = f"{f.metadata['help']} (default: {f.default})"
        if kind is bool:
            parser.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            parser.add_argument(
                flag,
                type=str,
                nargs="+" if key == "stages" else None,  # --stages 1-1 1-2, or a world: 1
                default=argparse.SUPPRESS,
                metavar=kind.__name__.upper(),
                choices=key_choices(key) or None,
                help=help_text,
            )


_TRAIN_FLAGS = ("command", "config", "preset", "resume", "idle_when_done", "func")


def _cmd_train(args: argparse.Namespace, argv: Sequence[str]) -> int | Callable[[], int]:
    """Validate everything, then hand back the training loop to run outside the error net."""
    from mario.config import load_yaml
    from mario.presets import preset_path

    overrides = {k: v for k, v in vars(args).items() if k not in _TRAIN_FLAGS}
    yaml_values: dict[str, Any] = {}
    if args.preset:
        yaml_values.update(load_yaml(preset_path(args.preset)))
    if args.config:
        yaml_values.update(load_yaml(Path(args.config)))
    if args.resume is not None and _run_is_complete(args, overrides, yaml_values):
        return _finish(args, 0, "the run is complete")

    from mario.training.collector import EXIT_ACTORS_FAILING
    from mario.training.runner import EXIT_DISK_FULL, EXIT_DIVERGED, Runner
    from mario.training.setup import prepare_run

    setup = prepare_run(overrides, yaml_values=yaml_values, resume=args.resume)
    runner = Runner(setup, argv=list(argv))

    def run() -> int:
        status = runner.run()  # 5 (cluster lost) exits: a restart resumes once it is back
        if status in (EXIT_DIVERGED, EXIT_DISK_FULL, EXIT_ACTORS_FAILING):
            return _finish(args, status, "a restart would not help (see the line above)")
        if status == 0 and not runner.stop_requested:
            return _finish(args, status, "the run is complete")
        return status

    return run


def _run_is_complete(
    args: argparse.Namespace, overrides: dict[str, Any], yaml_values: dict[str, Any]
) -> bool:
    """Whether ``--resume`` continues a run that already reached its total: told from the
    newest checkpoint's manifest (its config is there), before torch is even imported, with
    the options checked as a real resume would and nothing written. A container restarted
    after its run finished costs a fraction of a second."""
    from mario.config import build_config, check_algo, check_resumable
    from mario.storage.run_folders import list_checkpoints, newest_run

    given = overrides.get("run_dir") or yaml_values.get("run_dir")
    if args.resume == "auto":
        target = Path(given) if given else newest_run(Path("checkpoints"))
    else:  # a run folder continued in place (a checkpoint, or another --run-dir: not here)
        target = None if given else Path(args.resume)
    found = list_checkpoints(target) if target is not None else []
    saved = found[-1].manifest.get("meta", {}).get("config") if found else None
    if not isinstance(saved, dict):  # none, or saved by an older version: the full path
        return False
    check_algo(saved, overrides.get("algo", yaml_values.get("algo")), found[-1].path)
    config = build_config(saved, **{**yaml_values, **overrides})
    check_resumable(saved, config, found[-1].path)
    if found[-1].step < config.run.total_steps:
        return False
    print(
        f"run already complete: step {found[-1].step} of {found[-1].run_dir} reached its "
        f"total_steps {config.run.total_steps} (raise --total-steps to train on)",
        flush=True,
    )
    return True


def _finish(args: argparse.Namespace, status: int, why: str) -> int:
    """Exit with ``status``, or with ``--idle-when-done`` first wait for a stop signal: a
    container whose restart policy restarts every exit (``unless-stopped``) then neither
    loops on a run that a restart cannot help nor stops resuming after crashes and reboots."""
    if getattr(args, "idle_when_done", False):
        import signal

        print(
            f"mario train: {why}; waiting for a stop signal (--idle-when-done)",
            file=sys.stderr,
            flush=True,
        )
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    return status


# --------------------------------------------------------------------------- info


def _shipped_info(name: str | None) -> dict[str, Any]:
    """``mario info --pretrained [NAME]``: one shipped agent, or all of them by name, with
    what made it (command, seed, steps, minutes, machine, evaluation)."""
    from mario.playing import pretrained

    def describe(name: str) -> dict[str, Any]:
        data = pretrained.read(name)
        config = data["config"]
        return {
            "name": name,
            "algo": data["algo"],
            "step": data["step"],
            "stage": config.get("stage"),
            "actions": config.get("actions"),
            "network": data["net_signature"],
            **data.get("provenance", {}),
        }

    if name:
        return describe(name)
    return {shipped: describe(shipped) for shipped in pretrained.names()}


def _cmd_info(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from mario.game.backends import backend_name
    from mario.storage.checkpoints import load_checkpoint, upgrade_state

    indent = None if args.compact else 2
    if args.pretrained is not None:
        if args.path:
            raise ValueError("give a PATH or --pretrained, not both")
        print(json.dumps(_shipped_info(args.pretrained), indent=indent))
        return 0
    if not args.path:
        raise ValueError("missing PATH: give a run folder or checkpoint, or --pretrained [NAME]")
    state, info, warnings = load_checkpoint(Path(args.path), fallback=True)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    state = upgrade_state(state, info.state_path)
    counters = state["counters"]
    print(
        json.dumps(
            {
                "algo": state.get("algo", "dqn"),
                "step": counters["step"],
                "episodes": counters["episodes"],
                "updates": counters["updates"],
                **state.get("status", {}),
                "stage": state["stage"],
                "actions": state["actions"],
                "wandb_run_id": state["wandb_run_id"],
                "game_backend": backend_name(state["versions"].get("nes-py")),
                "versions": state["versions"],
                "created": state["created"],
                "path": str(info.path),
                "run_dir": str(info.run_dir),
                "has_replay": info.replay_path is not None,
                "network": state["net_signature"],
            },
            indent=indent,
        )
    )
    return 0


# --------------------------------------------------------------------------- replay / eval


def _agent_from_args(args: argparse.Namespace, actions: str = "simple") -> Any:
    from mario.device import resolve_device
    from mario.playing.agents import load_agent, random_agent

    chosen = [bool(args.path), args.random, bool(args.pretrained)]
    if sum(chosen) > 1:
        raise ValueError(
            "give only one of a checkpoint PATH, --pretrained NAME or --random, not both"
        )
    if args.pretrained:
        from mario.playing.agents import load_pretrained

        return load_pretrained(args.pretrained, device=args.device, seed=args.seed)
    if args.random:
        resolve_device(args.device)  # a bad --device is an error with or without a network
        return random_agent(actions, seed=args.seed)
    if not args.path:
        raise ValueError(
            "missing PATH: give a run folder or checkpoint, --pretrained NAME or --random"
        )
    return load_agent(args.path, device=args.device, seed=args.seed)


def _replay_output(args: argparse.Namespace, agent: Any, stage: str) -> tuple[Path, str]:
    """The file ``mario replay`` writes and its format (GIF with --gif or a .gif --out).

    Default: ``RUN/videos/replay-step-N.mp4`` for a checkpoint of a run folder (beside the
    checkpoint folder otherwise), ``videos/random-STAGE.mp4`` (``videos/pretrained-NAME-
    STAGE.mp4``) under the working folder for --random (--pretrained): never loose files in
    a clone's root (the repository ignores ``videos/``).
    """
    from mario.playing.video import VideoOutputError
    from mario.storage.run_folders import CHECKPOINTS, run_dir_of

    if args.out:
        out = Path(args.out)
        is_gif = out.suffix.lower() == ".gif"
        if args.gif and not is_gif:
            raise ValueError(f"--gif writes a GIF: give --out a .gif name, not {brief(args.out)}")
        if agent.path is not None:  # never over a run's own files (metrics, best.json, ...)
            parent = agent.path.parent
            if parent.name == CHECKPOINTS:  # a run folder: only its videos/ takes videos
                run, videos = parent.parent.resolve(), parent.parent.resolve() / "videos"
                inside = run in out.resolve().parents and videos not in out.resolve().parents
                if inside:
                    raise ValueError(
                        f"--out {args.out} is inside the run folder {parent.parent}, beside "
                        f"its own files: choose a path in {parent.parent / 'videos'} or outside "
                        "the run"
                    )
            elif agent.path.resolve() in out.resolve().parents:
                raise ValueError(
                    f"--out {args.out} is inside the checkpoint folder {agent.path}: "
                    "choose a path outside it"
                )
        return out, "gif" if is_gif else "mp4"
    fmt = "gif" if args.gif else "mp4"
    videos = run_dir_of(agent.path) / "videos" if agent.path is not None else Path("videos")
    try:
        videos.mkdir(exist_ok=True)
    except OSError as error:
        raise VideoOutputError(
            f"cannot create the video folder {videos}: {error.strerror or error} "
            "(choose another file with --out)"
        ) from None
    if agent.path is None:
        name = f"pretrained-{agent.name}" if agent.name else "random"
        return videos / f"{name}-{stage}.{fmt}", fmt
    return videos / f"replay-step-{agent.step:09d}.{fmt}", fmt


def _cmd_replay(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``mario replay``: render episodes to an MP4 (or GIF) and print what happened."""
    from mario.game.options import parse_stage
    from mario.playing.episodes import gif_fps, record
    from mario.playing.video import VideoWriter, check_video_options

    check_video_options(scale=args.scale, fps=args.fps)  # before any folder is made
    agent = _agent_from_args(args)
    stage = args.stage or agent.config.run.stage
    parse_stage(stage)
    out, fmt = _replay_output(args, agent, stage)
    writer = VideoWriter(
        out,
        fps=args.fps,
        scale=args.scale,
        fmt=fmt,  # type: ignore[arg-type]
        overlay=args.overlay,
        agent_view=args.agent_view,
        gif_fps=gif_fps(args.fps),
    )
    episodes = record(
        agent,
        stage,
        writer,
        episodes=args.episodes,
        seed=args.seed,
        epsilon=args.epsilon,
        max_steps=args.max_steps,
        sticky=args.sticky,
    )
    print(str(out))
    for k, e in enumerate(episodes):
        print(
            f"episode {k + 1}: stage {e.stage} x_pos {e.x_pos} return {e.ret:.1f} "
            f"flag {e.flag} steps {e.steps} frames {e.frames}"
        )
    return 0


def _cmd_eval(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``mario eval``: greedy evaluation per stage (with ``--robust`` also under ε 0.05 and
    under sticky actions 0.25, on the same seeds); ``--json`` prints one object."""
    from mario.playing.episodes import evaluate, evaluate_robust

    agent = _agent_from_args(args, actions=args.actions)
    stages = args.stages or [agent.config.run.stage]
    robust: dict[str, Any] = {}
    if args.robust:
        if args.epsilon or args.sticky:
            raise ValueError("--robust runs its own settings: leave out --epsilon and --sticky")
        robust = evaluate_robust(
            agent, stages, args.episodes, seed=args.seed, max_steps=args.max_steps
        )
        result = robust.pop("deterministic")
    else:
        result = evaluate(
            agent,
            stages,
            args.episodes,
            seed=args.seed,
            epsilon=args.epsilon,
            max_steps=args.max_steps,
            sticky=args.sticky,
        )
    report = {
        "checkpoint": str(agent.path)
        if agent.path
        else (f"pretrained {agent.name}" if agent.name else "random"),
        "algo": agent.config.algo if agent.path or agent.name else "random",
        "step": agent.step,
        "episodes": args.episodes,
        "epsilon": args.epsilon,
        "sticky": args.sticky,
        "stages": result,
    }
    if robust:  # the perturbed evaluations, their runs too (where a perturbed episode ended)
        report["robust"] = robust
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"checkpoint: {report['checkpoint']} (step {agent.step})")
    for stage, st in result.items():
        for k, run in enumerate(st["runs"]):
            print(
                f"  {stage} episode {k + 1}: x_pos {run['x_pos']} return {run['ret']:.1f} "
                f"flag {run['flag']} steps {run['steps']}"
            )
        beside = ", ".join(
            f"{name.replace('_', ' ')}: {robust[name][stage]['flag_rate']}" for name in robust
        )
        print(
            f"{stage}: return mean {st['return_mean']} median {st['return_median']}, "
            f"x_pos mean {st['x_pos_mean']} max {st['x_pos_max']}, flag rate {st['flag_rate']}"
            + (f" ({beside})" if beside else "")
        )
    return 0


# --------------------------------------------------------------------------- bench


def _cmd_bench(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from mario import bench

    result = bench.run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(bench.format_result(args.what, result))
    return 0


# --------------------------------------------------------------------------- parser


def _int_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in [``low``, ``high``], or a message saying what is
    wrong."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number, got {brief(text)}"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low}, {high}], got {brief(value)}")
        return value

    return parse


_positive_int = _int_between(1, MAX_INT)
_seed = _int_between(0, MAX_SEED)
_episodes = _int_between(1, MAX_EPISODES)
_max_steps = _int_between(1, MAX_EPISODE_STEPS)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {brief(text)}") from None
    if not 0.0 < value <= 3600.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 3600], got {brief(value)}")
    return value


def _sticky(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number in [0, {MAX_STICKY}], got {brief(text)}"
        ) from None
    if not 0.0 <= value <= MAX_STICKY:
        raise argparse.ArgumentTypeError(f"must be in [0, {MAX_STICKY}], got {brief(value)}")
    return value


def _epsilon(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number in [0, 1], got {brief(text)}"
        ) from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def _pretrained_help() -> str:
    from mario.playing.pretrained import names

    return f"an agent shipped with mario: {', '.join(names()) or 'none yet'}"


_DEVICE_HELP = "torch device: auto (CUDA if there is one, else CPU), cpu, cuda, cuda:N"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mario",
        description="Train agents (Double DQN or PPO) to play Super Mario Bros; watch them play.",
    )
    from mario import __version__
    from mario.config import EVAL_SEED
    from mario.game import backends

    seeds = f"default {EVAL_SEED}: above every training env's seed"

    parser.add_argument(
        "--version",
        action="version",
        version=f"mario {__version__}, game backend {backends.describe()}",
    )
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        parser_class=_Parser,
        metavar="{train,replay,eval,info,bench}",
    )

    train = sub.add_parser(
        "train",
        help="train an agent, Double DQN or PPO (resumable)",
        description=f"Train an agent (--algo {'|'.join(algos.names())}). Every config key is an "
        "option; --config FILE (YAML) and --preset NAME set several.",
    )
    train.add_argument("--config", metavar="FILE", help="YAML file of config keys")
    train.add_argument(
        "--preset", metavar="NAME", help="a named config from mario/presets (e.g. fast-1-1)"
    )
    train.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        metavar="PATH",
        help="continue a run: a run folder or checkpoint; without PATH the run "
        "in --run-dir, else the newest run under checkpoints/ (a new run if "
        "there is none)",
    )
    train.add_argument(
        "--idle-when-done",
        action="store_true",
        help="when the run is complete or cannot go on (bad input, diverged, disk full), wait "
        "for a stop signal instead of exiting: for containers that restart every exit",
    )
    _add_config_options(train)
    train.set_defaults(func=_cmd_train)

    info = sub.add_parser(
        "info", help="print a checkpoint's (or a shipped agent's) metadata as JSON"
    )
    info.add_argument(
        "path", nargs="?", help="run folder (newest complete checkpoint) or checkpoint"
    )
    info.add_argument(
        "--pretrained",
        nargs="?",
        const="",
        metavar="NAME",
        help=f"{_pretrained_help()}, and what made it; without NAME: every shipped agent",
    )
    info.add_argument("--compact", action="store_true", help="one line of JSON")
    info.set_defaults(func=_cmd_info)

    replay = sub.add_parser("replay", help="render a checkpoint's episodes to MP4 (or GIF)")
    replay.add_argument("path", nargs="?", help="run folder or checkpoint (not with --random)")
    replay.add_argument("--random", action="store_true", help="a random agent; no checkpoint")
    replay.add_argument("--pretrained", metavar="NAME", help=_pretrained_help())
    replay.add_argument(
        "--out",
        help="output file; .gif writes a GIF (default: RUN/videos/replay-step-N.mp4, and "
        "videos/pretrained-NAME-STAGE.mp4 or videos/random-STAGE.mp4 here)",
    )
    replay.add_argument(
        "--episodes",
        type=_episodes,
        default=1,
        help="episodes to record, one after another (default 1)",
    )
    replay.add_argument("--stage", help="stage to play (default: the checkpoint's)")
    replay.add_argument(
        "--seed",
        type=_seed,
        default=EVAL_SEED,
        help=f"episode i plays with seed SEED + i ({seeds})",
    )
    replay.add_argument(
        "--max-steps",
        type=_max_steps,
        default=5000,
        help="agent steps per episode at most (default 5000)",
    )
    replay.add_argument(
        "--epsilon",
        type=_epsilon,
        default=0.0,
        help="random-action probability, 0 to 1 (default 0: greedy)",
    )
    replay.add_argument(
        "--sticky",
        type=_sticky,
        default=0.0,
        help="sticky actions' probability, 0 to 0.99 (each frame may replay the last buttons; "
        "default 0)",
    )
    replay.add_argument(
        "--fps",
        type=_positive_int,
        default=60,
        help="frames per second of the video (default 60: the NES's, every emulator frame)",
    )
    replay.add_argument(
        "--scale",
        type=_positive_int,
        default=2,
        help="integer upscale of the 256x240 frame, 1 to 8 (nearest neighbour; default 2)",
    )
    replay.add_argument(
        "--overlay",
        action="store_true",
        help="draw a HUD: step, x_pos, return, buttons, Q-value or action-probability bars",
    )
    replay.add_argument(
        "--agent-view", action="store_true", help="side panel with the frame stack the network sees"
    )
    replay.add_argument("--gif", action="store_true", help="write an animated GIF")
    replay.add_argument("--device", default="auto", help=_DEVICE_HELP)
    replay.set_defaults(func=_cmd_replay)

    ev = sub.add_parser("eval", help="greedy evaluation of a checkpoint")
    ev.add_argument("path", nargs="?", help="run folder or checkpoint (not with --random)")
    ev.add_argument("--random", action="store_true", help="evaluate a random agent")
    ev.add_argument("--pretrained", metavar="NAME", help=_pretrained_help())
    ev.add_argument(
        "--episodes", type=_episodes, default=10, help="episodes per stage (default 10)"
    )
    ev.add_argument("--stages", nargs="+", help="stages (default: the checkpoint's)")
    ev.add_argument(
        "--seed",
        type=_seed,
        default=EVAL_SEED,
        help=f"episode i plays with seed SEED + i ({seeds})",
    )
    ev.add_argument(
        "--max-steps",
        type=_max_steps,
        default=5000,
        help="agent steps per episode at most (default 5000)",
    )
    ev.add_argument(
        "--epsilon",
        type=_epsilon,
        default=0.0,
        help="random-action probability, 0 to 1 (default 0: greedy; 0.05: Nature DQN's)",
    )
    ev.add_argument(
        "--sticky",
        type=_sticky,
        default=0.0,
        help="sticky actions: each emulator frame plays the previous frame's buttons with this "
        "probability, 0 to 0.99 (default 0; 0.25: the robust evaluation)",
    )
    ev.add_argument(
        "--robust",
        action="store_true",
        help="also evaluate with epsilon 0.05 and with sticky actions 0.25 (same seeds) and "
        "give their flag rates beside the deterministic one",
    )
    ev.add_argument("--actions", default="simple", help="action set for --random (default simple)")
    ev.add_argument("--device", default="auto", help=_DEVICE_HELP)
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=_cmd_eval)

    bench = sub.add_parser("bench", help="benchmarks (see docs/BENCHMARKS.md)")
    bench.add_argument(
        "what",
        choices=("env", "replay", "learner", "train", "distributed"),
        help="env: emulator frames/s; replay: the replay memory; learner: updates/s; train: "
        "the real training loop; distributed: Ray actors' wire and both trainers",
    )
    bench.add_argument(
        "--seconds", type=_seconds, default=3.0, help="per timed run (up to 3600; default 3)"
    )
    bench.add_argument(
        "--repeats", type=_int_between(1, 100), default=3, help="timed runs (default 3)"
    )
    bench.add_argument("--max-envs", type=_int_between(1, 256), help="env: largest vector size")
    bench.add_argument(
        "--num-envs", type=_int_between(1, 256), default=2, help="train: envs (default 2)"
    )
    bench.add_argument(
        "--num-actors",
        type=_int_between(1, 1024),
        default=2,
        help="distributed: Ray actors (default 2)",
    )
    bench.add_argument(
        "--envs-per-actor",
        type=_int_between(1, MAX_ENVS_PER_CORE),
        default=1,
        help="distributed: envs per actor (default 1)",
    )
    bench.add_argument(
        "--ray-address",
        default="",
        help="distributed: a running Ray cluster (default: a local Ray instance)",
    )
    bench.add_argument(
        "--preset",
        metavar="NAME",
        help="train: the learning settings of a preset (algorithm, batch, network, bf16)",
    )
    bench.add_argument("--algo", choices=algos.names(), help="train: the algorithm (dqn)")
    bench.add_argument(
        "--batch-sizes",
        type=_int_between(1, 65536),
        nargs="+",
        help="learner: batch sizes to time",
    )
    bench.add_argument(
        "--steps",
        type=_int_between(1, 1_000_000),
        help="learner: updates per timed run (CUDA 200, CPU 20)",
    )
    for flag, what in (
        ("--amp", "bf16 autocast"),
        ("--compile", "torch.compile"),
        ("--cuda-graph", "the CUDA-graphed update"),
    ):
        bench.add_argument(
            flag,
            choices=("auto", "off", "on", "both"),
            default="auto",
            help=f"learner: {what} off, on or both (auto: both on CUDA, off elsewhere)",
        )
    bench.add_argument("--device", default="auto", help=_DEVICE_HELP)
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.set_defaults(func=_cmd_bench)
    return parser


def subcommands(parser: argparse.ArgumentParser) -> dict[str, _Parser]:
    """The parser of each subcommand of :func:`build_parser`'s ``parser``, by name."""
    choices: Any = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    return dict(choices)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # the subcommand names them and suggests the closest option
        subcommands(parser)[args.command].unrecognized(extra)
    func: Callable[[argparse.Namespace, Sequence[str]], int | Callable[[], int]] = args.func
    prog = f"mario {args.command}"
    try:
        result = func(args, argv)
    except _user_errors() as error:
        if isinstance(error, OSError) and error.filename is not None:
            message = f"{brief_path(error.filename)}: {error.strerror or type(error).__name__}"
        else:
            message = " ".join(str(error).split()) or type(error).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        status = getattr(error, "exit_status", EXIT_USAGE)  # e.g. 5: a cluster down for now
        if status != EXIT_USAGE:
            return int(status)
        return _finish(args, EXIT_USAGE, "bad input: a restart would not help")
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    # A long job (training) runs outside the net above: its failures are bugs, not bad input,
    # and keep their traceback.
    return result() if callable(result) else result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
