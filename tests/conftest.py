"""Fixtures every test module may use: an isolated HOME, and one finished real run that
tests copy instead of training their own. Helpers live in :mod:`tests.helpers`; the Ray
instance in tests/test_distributed.py, its only user."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import TINY, run_cli


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A HOME without W&B credentials."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run (TINY: DQN, one env) that reached its 400 steps: checkpoints 200, 300 and
    400 (and 100, if it was the best). Trained once per session; use :func:`run_copy`."""
    from mario.storage.checkpoints import list_checkpoints

    run = tmp_path_factory.mktemp("finished") / "run"
    result = run_cli("train", *TINY, "--total-steps", "400", "--run-dir", str(run))
    assert result.returncode == 0, result.stderr
    assert [c.step for c in list_checkpoints(run)][-3:] == [200, 300, 400]
    return run


@pytest.fixture
def run_copy(finished: Path, tmp_path: Path) -> Path:
    """A copy of the :func:`finished` run for one test to change."""
    copy = tmp_path / "run"
    shutil.copytree(finished, copy, ignore=shutil.ignore_patterns(".lock"))
    return copy
