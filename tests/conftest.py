"""Fixtures every test module may use: an isolated HOME. Helpers live in
:mod:`tests.helpers`; the Ray instance in tests/test_distributed.py, its only user."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A HOME without W&B credentials."""
    path = tmp_path / "home"
    path.mkdir()
    return path
