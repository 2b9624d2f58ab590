"""A training run on a two-node Ray cluster that loses a node mid-run (run as a subprocess by
tests/test_distributed.py: ``ray.cluster_utils.Cluster`` needs a process without the
session's Ray instance).

``python -m tests.ray_two_nodes RUN_DIR``: a head node with 1 CPU and a worker node with 2,
two actors on the toy corridor; at step 600 the worker node is removed (its actors die with
it), at step 1,200 a new node joins; the run must reach its total and save. Prints one JSON
line with what happened.
"""

# ruff: noqa: E402 (Ray reads its settings when it is imported: they come first)
from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_AUTH_MODE", "token")  # before Ray reads its config
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
from mario.distributed.cluster import set_ray_defaults  # imports no Ray

set_ray_defaults()

import ray
from ray.cluster_utils import Cluster

from mario.training.hooks import Hook, default_hooks
from mario.training.runner import Runner
from mario.training.setup import prepare_run
from tests.toy_env import make_corridor_sync

ROOT = str(Path(__file__).resolve().parents[1])


class NodeChanges(Hook):
    """Remove the worker node at ``remove_at``, add a fresh one at ``add_at``."""

    def __init__(self, cluster: Cluster, worker: Any, remove_at: int, add_at: int) -> None:
        self.cluster, self.worker = cluster, worker
        self.remove_at, self.add_at = remove_at, add_at
        self.events: list[tuple[str, int, int]] = []

    def after_step(self, runner: Runner) -> None:
        restarts = getattr(runner.collector, "restarts", 0)
        if self.worker is not None and runner.step >= self.remove_at:
            self.cluster.remove_node(self.worker)
            self.worker = None
            self.events.append(("removed", runner.step, restarts))
        elif self.worker is None and runner.step >= self.add_at and len(self.events) == 1:
            self.cluster.add_node(num_cpus=2)
            self.events.append(("added", runner.step, restarts))


def main(run_dir: str) -> int:
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    worker = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, runtime_env={"env_vars": {"PYTHONPATH": ROOT}})
    try:
        setup = prepare_run(
            {
                "run_dir": run_dir,
                "total_steps": 2400,
                "burn_in": 200,
                "replay_size": 4000,
                "replay_ratio": 0.05,
                "checkpoint_every": 800,
                "log_every": 200,
                "wandb_mode": "disabled",
                "ray_address": cluster.address,
                "num_actors": 2,
                "envs_per_actor": 2,
                "actor_steps": 8,
                "weights_every": 0.5,
            }
        )
        runner = Runner(setup, actor_env_factory=make_corridor_sync, n_actions=3, hooks=[])
        changes = NodeChanges(cluster, worker, remove_at=600, add_at=1200)
        runner.hooks = [*default_hooks(runner), changes]
        status = runner.run()
        print(json.dumps({"status": status, "step": runner.step, "events": changes.events}))
        return 0
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
