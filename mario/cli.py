"""The ``mario`` console script: parse arguments, call the library, turn errors into one line.

Bad input (unknown option or config key, bad value, missing or corrupt checkpoint,
unwritable output) prints ``mario <command>: error: <what is wrong and what is valid>``,
exits with status 2 and leaves existing checkpoints untouched.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors on one line (no usage dump) with exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _user_errors() -> tuple[type[BaseException], ...]:
    from mario.checkpoint import CheckpointError
    from mario.config import ConfigError

    # ValueError covers the env's argument checks and video.VideoOutputError (unwritable --out)
    return (ConfigError, CheckpointError, ValueError)


# --------------------------------------------------------------------------- train


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    from mario.config import TrainConfig, field_type

    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = field_type(f.name)
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
                default=argparse.SUPPRESS,
                metavar=kind.__name__.upper(),
                choices=f.metadata.get("choices"),
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

    from mario.train import EXIT_DISK_FULL, EXIT_DIVERGED, Trainer, prepare_run

    setup = prepare_run(overrides, yaml_values=yaml_values, resume=args.resume)
    trainer = Trainer(setup, argv=list(argv))

    def run() -> int:
        status = trainer.run()
        if status in (EXIT_DIVERGED, EXIT_DISK_FULL):
            return _finish(args, status, "a restart would not help (see the line above)")
        if status == 0 and not trainer.stop_requested:
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
    from mario.config import build_config, check_resumable
    from mario.run_folder import list_checkpoints, newest_run

    given = overrides.get("run_dir") or yaml_values.get("run_dir")
    if args.resume == "auto":
        target = Path(given) if given else newest_run(Path("checkpoints"))
    else:  # a run folder continued in place (a checkpoint, or another --run-dir: not here)
        target = None if given else Path(args.resume)
    found = list_checkpoints(target) if target is not None else []
    saved = found[-1].manifest.get("meta", {}).get("config") if found else None
    if not isinstance(saved, dict):  # none, or saved by an older version: the full path
        return False
    config = build_config(saved, **{**yaml_values, **overrides})
    check_resumable(saved, config, found[-1].path)
    if found[-1].step < config.total_steps:
        return False
    print(
        f"run already complete: step {found[-1].step} of {found[-1].run_dir} reached its "
        f"total_steps {config.total_steps} (raise --total-steps to train on)",
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


def _cmd_info(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from mario.checkpoint import load_checkpoint

    state, info, warnings = load_checkpoint(Path(args.path), fallback=True)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    counters = state["counters"]
    print(
        json.dumps(
            {
                "step": counters["step"],
                "episodes": counters["episodes"],
                "updates": counters["updates"],
                "epsilon": state["exploration"]["epsilon"],
                "stage": state["stage"],
                "actions": state["actions"],
                "wandb_run_id": state["wandb_run_id"],
                "versions": state["versions"],
                "created": state["created"],
                "path": str(info.path),
                "run_dir": str(info.run_dir),
                "has_replay": info.replay_path is not None,
                "network": state["net_signature"],
            },
            indent=None if args.compact else 2,
        )
    )
    return 0


# --------------------------------------------------------------------------- replay / eval


def _cmd_replay(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from mario.play import replay_command

    return replay_command(args)


def _cmd_eval(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from mario.play import eval_command

    return eval_command(args)


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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _epsilon(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mario",
        description="Train Double-DQN agents to play Super Mario Bros, and watch them play.",
    )
    from mario import __version__

    parser.add_argument("--version", action="version", version=f"mario {__version__}")
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        parser_class=_Parser,
        metavar="{train,replay,eval,info,bench}",
    )

    train = sub.add_parser(
        "train",
        help="train a Double-DQN agent (resumable)",
        description="Train a Double-DQN agent. Every config key is an "
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

    info = sub.add_parser("info", help="print a checkpoint's metadata as JSON")
    info.add_argument("path", help="run folder (newest complete checkpoint) or checkpoint")
    info.add_argument("--compact", action="store_true", help="one line of JSON")
    info.set_defaults(func=_cmd_info)

    replay = sub.add_parser("replay", help="render a checkpoint's episodes to MP4 (or GIF)")
    replay.add_argument("path", nargs="?", help="run folder or checkpoint (not with --random)")
    replay.add_argument("--random", action="store_true", help="a random agent; no checkpoint")
    replay.add_argument("--out", help="output file (default: RUN/videos/replay-step-N.mp4)")
    replay.add_argument("--episodes", type=_positive_int, default=1)
    replay.add_argument("--stage", help="stage to play (default: the checkpoint's)")
    replay.add_argument("--seed", type=int, default=0)
    replay.add_argument(
        "--max-steps", type=_positive_int, default=5000, help="agent steps per episode at most"
    )
    replay.add_argument(
        "--epsilon", type=_epsilon, default=0.0, help="random-action probability (0: greedy)"
    )
    replay.add_argument("--fps", type=_positive_int, default=60)
    replay.add_argument(
        "--scale",
        type=_positive_int,
        default=2,
        help="integer upscale of the 256x240 frame (nearest neighbour)",
    )
    replay.add_argument(
        "--overlay",
        action="store_true",
        help="draw a HUD: step, x_pos, return, buttons, Q-value bars",
    )
    replay.add_argument(
        "--agent-view", action="store_true", help="side panel with the frame stack the network sees"
    )
    replay.add_argument("--gif", action="store_true", help="write an animated GIF")
    replay.add_argument("--device", default="auto")
    replay.set_defaults(func=_cmd_replay)

    ev = sub.add_parser("eval", help="greedy evaluation of a checkpoint")
    ev.add_argument("path", nargs="?", help="run folder or checkpoint (not with --random)")
    ev.add_argument("--random", action="store_true", help="evaluate a random agent")
    ev.add_argument("--episodes", type=_positive_int, default=10)
    ev.add_argument("--stages", nargs="+", help="stages (default: the checkpoint's)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--max-steps", type=_positive_int, default=5000)
    ev.add_argument("--epsilon", type=_epsilon, default=0.0)
    ev.add_argument("--actions", default="simple", help="action set for --random")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=_cmd_eval)

    bench = sub.add_parser("bench", help="benchmarks (see docs/BENCHMARKS.md)")
    bench.add_argument("what", choices=("env", "replay", "learner", "train"))
    bench.add_argument("--seconds", type=float, default=3.0, help="per timed run")
    bench.add_argument("--repeats", type=_positive_int, default=3)
    bench.add_argument("--max-envs", type=_positive_int, help="env: largest vector size")
    bench.add_argument("--num-envs", type=_positive_int, default=2, help="train: envs")
    bench.add_argument(
        "--preset",
        metavar="NAME",
        help="train: the learning settings of a preset (batch, replay ratio, network, bf16)",
    )
    bench.add_argument(
        "--batch-sizes", type=_positive_int, nargs="+", help="learner: batch sizes to time"
    )
    bench.add_argument(
        "--steps", type=_positive_int, help="learner: updates per timed run (CUDA 200, CPU 20)"
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
    bench.add_argument("--device", default="auto")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace, Sequence[str]], int | Callable[[], int]] = args.func
    prog = f"mario {args.command}"
    try:
        result = func(args, argv)
    except _user_errors() as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        return _finish(args, EXIT_USAGE, "bad input: a restart would not help")
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    # A long job (training) runs outside the net above: its failures are bugs, not bad input,
    # and keep their traceback.
    return result() if callable(result) else result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
