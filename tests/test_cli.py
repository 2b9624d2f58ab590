"""The command line as a newcomer meets it: help for every option, no silent abbreviations,
typos answered with the closest option (all in this process: only the answer matters)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import pytest

from mario import cli
from tests.helpers import assert_one_line_error, run_cli

COMMANDS = ("train", "eval", "replay", "bench", "info")


def test_every_option_of_every_subcommand_says_what_it_does() -> None:
    subparsers = cli.subcommands(cli.build_parser())
    assert set(subparsers) == set(COMMANDS)
    for name, sub in subparsers.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            label = action.option_strings or [action.dest]
            assert action.help and action.help != argparse.SUPPRESS, (name, label)
            assert len(action.help) > 15, (name, label, action.help)
        text = io.StringIO()
        with contextlib.redirect_stdout(text), pytest.raises(SystemExit):
            sub.parse_args(["--help"])
        assert "(default: )" not in text.getvalue(), name


def test_abbreviations_are_refused_and_typos_get_the_closest_option(tmp_path: Path) -> None:
    # --stage would have been taken as --stages, --total as --total-steps
    assert_one_line_error(run_cli("eval", "--random", "--stage", "1-2"), "mario eval", "--stages")
    assert_one_line_error(
        run_cli("train", "--total", "5", "--run-dir", str(tmp_path / "r")), "mario train"
    )
    typo = run_cli("train", "--totl-steps", "100", "--run-dir", str(tmp_path / "r"))
    assert_one_line_error(
        typo, "mario train: error: unrecognized arguments: --totl-steps 100", "--total-steps?"
    )
    assert_one_line_error(run_cli("replay", "--random", "--scael=3"), "did you mean --scale?")
    assert_one_line_error(run_cli("info", "a", "b"), "unrecognized arguments: b")
    assert not (tmp_path / "r").exists()


def test_info_lists_the_shipped_agents_and_what_made_them() -> None:
    one = json.loads(run_cli("info", "--pretrained", "1-1").stdout)
    assert one["name"] == "1-1" and one["stage"] == "1-1" and one["algo"] == "dqn"
    assert one["command"].startswith("mario train --preset clear-1-1") and one["step"] == 300_000
    assert one["eval"]["1-1"]["episodes"] == 10 and one["minutes"] > 0
    every = json.loads(run_cli("info", "--pretrained", "--compact").stdout)
    assert every == {"1-1": one}
    assert_one_line_error(run_cli("info", "--pretrained", "nope"), "shipped agents are 1-1")
    assert_one_line_error(run_cli("info"), "missing PATH", "--pretrained")
    assert_one_line_error(run_cli("info", "x", "--pretrained", "1-1"), "not both")
