"""Training on a Ray cluster: remote actors, their batches, weights, deaths, and the CLI.

Everything runs on one local Ray instance (the session's ``ray_address`` fixture, 2 CPUs,
token authentication on), with the toy corridor in the actors where learning has to fit in
seconds and the real emulator through ``mario train``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mario.algos.base import Transition
from mario.algos.dqn.algorithm import acting_weights
from mario.algos.ppo.algorithm import acting_weights as ppo_weights
from mario.config import TrainConfig, build_config
from mario.distributed.actor import EnvActor
from mario.distributed.cluster import set_ray_defaults
from mario.distributed.collector import RayCollector
from mario.distributed.rollouts import RolloutCollector
from mario.distributed.wire import restack
from mario.models import ActorCritic, MarioNet
from mario.storage.checkpoints import list_checkpoints, load_checkpoint
from mario.storage.metrics import read_metrics
from mario.training.collector import EXIT_ACTORS_FAILING
from mario.training.runner import Runner
from mario.training.setup import prepare_run
from tests.helpers import (
    MARIO,
    assert_one_line_error,
    mario_env,
    run_cli,
    run_mario,
    start_mario,
    wait_for_checkpoint,
)
from tests.toy_env import (
    TOY,
    greedy_success,
    make_corridor_sync,
    make_failing_corridor_sync,
    make_slow_corridor_sync,
)


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """One local Ray instance for this module (2 CPUs, no dashboard, its files under /tmp; its
    processes cost CPU even when idle, so it ends with the module),
    with token authentication as a real cluster has it: the token is in the environment, so
    ``mario train --ray-address`` subprocesses join with it. Returns the cluster's address."""
    import secrets
    import tempfile

    os.environ.setdefault("RAY_AUTH_MODE", "token")  # before Ray reads its config
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    set_ray_defaults()
    import ray

    root = str(Path(__file__).resolve().parents[1])  # actors import tests.toy_env
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths
    context = ray.init(
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=temp,
        runtime_env={"env_vars": {"PYTHONPATH": root}},
        logging_level=logging.WARNING,
    )
    try:
        yield str(context.address_info["gcs_address"])
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


K, T = 2, 16  # envs per actor, steps per batch


def toy_config(address: str, **overrides: Any) -> TrainConfig:
    values = {"ray_address": address, "num_actors": 2, "envs_per_actor": K, "actor_steps": T}
    return build_config({"replay_size": 4000, "burn_in": 0, **values, **overrides})


def right_walker() -> MarioNet:
    """A Q-network that always prefers action 2 (walk right) by a wide margin."""
    net = MarioNet(3, 4)
    with torch.no_grad():
        out = net.online.head[2]
        out.weight.zero_()
        out.bias.copy_(torch.tensor([0.0, 0.0, 10.0]))
    return net


def collect(collector: RayCollector, batches: int, timeout: float = 60) -> list[list[Transition]]:
    """``batches`` non-empty receives (the loop's send/receive pair), as lists of steps."""
    out: list[list[Transition]] = []
    deadline = time.monotonic() + timeout
    while len(out) < batches:
        assert time.monotonic() < deadline, f"only {len(out)} batches in {timeout} s"
        collector.send(None, None)
        _, steps, _ = collector.receive()
        if steps:
            out.append(steps)
    return out


def test_batches_hold_the_actors_steps_with_their_episode_boundaries(ray_address: str) -> None:
    """Shapes, streams, next frames and episode ends of two actors' play, as the replay
    memory needs them: each stream's steps follow each other across batches, and where an
    episode ended the next frame is its final one, not the next episode's first. (A policy
    that walks right 60% of the time: some episodes reach the goal, some time out.)"""
    cfg = toy_config(ray_address, eps_start=0.6, eps_end=0.6)
    net = right_walker()
    collector = RayCollector(
        cfg, 3, lambda: (acting_weights(net), 0, 0), seed=0, env_fn=make_corridor_sync
    )
    collector.reset()
    per_stream: dict[int, list[tuple[Transition, int, int]]] = {s: [] for s in range(4)}
    firsts: Counter[int] = Counter()
    batches: Counter[int] = Counter()
    try:
        while min(batches[0], batches[2]) < 12:  # an actor may start seconds after the other
            batch = collect(collector, 1)[0][0]  # one actor's batch: T steps of its K envs
            assert batch.obs.shape == batch.next_obs.shape == (T, K, 84, 84)
            assert batch.obs.dtype == np.uint8 and batch.action.shape == (T, K)
            assert batch.steps == T * K
            assert batch.streams is not None and list(batch.streams) in ([0, 1], [2, 3])
            batches[int(batch.streams[0])] += 1
            firsts[int(batch.streams[0])] += batch.cut
            for t in range(T):
                for row, s in enumerate(batch.streams):
                    per_stream[int(s)].append((batch, t, row))
    finally:
        collector.close()
    assert firsts == {0: 1, 2: 1}  # each actor's first batch starts its envs over
    ends = {"terminated": 0, "truncated": 0}
    lengths: list[int] = []
    for s, rows in per_stream.items():
        assert rows, f"no steps of stream {s}"
        length = 0
        for (batch, t, row), (following, t_next, row_next) in itertools.pairwise(rows):
            length += 1
            if batch.terminated[t, row] or batch.truncated[t, row]:
                # the final frame: terminated at the goal (the agent's column at x 72..79)
                if batch.terminated[t, row]:
                    assert (batch.next_obs[t, row][:, 72:80] == 255).all()
                    ends["terminated"] += 1
                else:
                    ends["truncated"] += 1
                    assert length == 25  # the corridor's time limit
                lengths.append(length)
                length = 0
            else:
                np.testing.assert_array_equal(
                    batch.next_obs[t, row], following.obs[t_next, row_next]
                )
    assert ends["terminated"] > 0 and ends["truncated"] > 0, ends
    assert all(1 <= n <= 25 for n in lengths)


def test_weights_reach_the_actors_and_choose_their_actions(ray_address: str) -> None:
    """Broadcast weights (every 0.2 s, new versions) arrive at every actor, and the actors
    act greedily with them (ε 0): a net that prefers "right" makes every action "right".
    It waits for the versions, not for a time: a busy machine sends fewer per second."""
    cfg = toy_config(ray_address, eps_start=0.0, eps_end=0.0, weights_every=0.2)
    net = right_walker()
    calls = []

    def weights() -> tuple[dict[str, torch.Tensor], int, int]:
        calls.append(len(calls))
        return acting_weights(net), calls[-1], 1_000

    collector = RayCollector(cfg, 3, weights, seed=1, env_fn=make_corridor_sync)
    collector.reset()
    try:
        deadline = time.monotonic() + 120
        actions = []
        while min(collector.versions) < 3:  # until both actors acted with a later version
            assert time.monotonic() < deadline, f"versions {collector.versions} after 120 s"
            for steps in collect(collector, 1):
                actions += [int(a) for step in steps for a in step.action.reshape(-1)]
    finally:
        collector.close()
    assert len(calls) > min(collector.versions)  # reset's broadcast, then one per 0.2 s
    assert set(actions) == {2}


def test_ordered_batches_come_in_turn_and_repeat_exactly(ray_address: str) -> None:
    """``ordered``: batches come from actor 0, 1, 0, 1, ... and new weights go out after each
    round, so two collectors with the same seed and the same weights play the same steps
    (the actions depend on which weights each batch acted with: they change every round)."""

    def play() -> tuple[list[tuple[int, list[int]]], int]:
        cfg = toy_config(ray_address, ordered=True, eps_start=0.3, eps_end=0.3)
        torch.manual_seed(0)
        net = MarioNet(3, 4)
        noise = torch.Generator().manual_seed(0)
        calls: list[int] = []

        def weights() -> tuple[dict[str, torch.Tensor], int, int]:
            with torch.no_grad():  # other greedy actions each round
                for p in net.parameters():
                    p.add_(torch.randn(p.shape, generator=noise))
            calls.append(len(calls))
            return acting_weights(net), calls[-1], 1_000

        collector = RayCollector(cfg, 3, weights, seed=5, env_fn=make_corridor_sync)
        collector.reset()
        try:
            batches = collect(collector, 8)
        finally:
            collector.close()
        return [(int(b[0].streams[0]), b[0].action.ravel().tolist()) for b in batches], len(calls)

    first, again = play(), play()
    assert [stream for stream, _ in first[0]] == [0, 2] * 4  # actor 0's envs, actor 1's
    assert first[1] == 1 + 4  # reset's broadcast, then one per round
    assert first == again


def test_a_killed_actor_is_replaced_and_the_batches_go_on(ray_address: str) -> None:
    """SIGKILL an actor's process: its batches in flight are dropped, a new actor takes its
    envs (its first batch cuts their episodes), and the other actor never stops."""
    cfg = toy_config(ray_address, eps_start=1.0, eps_end=1.0)
    net = MarioNet(3, 4)
    collector = RayCollector(
        cfg, 3, lambda: (acting_weights(net), 0, 0), seed=2, env_fn=make_corridor_sync
    )
    collector.reset()
    try:
        seen: set[int] = set()
        while seen != {0, 2}:  # both actors' first batches are in
            seen |= {int(s[0].streams[0]) for s in collect(collector, 1)}
        pid = collector.actors[0].__ray_call__.remote(lambda actor: os.getpid())
        import ray

        os.kill(ray.get(pid), signal.SIGKILL)
        after: list[list[Transition]] = []
        deadline = time.monotonic() + 90
        while not (after and after[-1][0].cut and after[-1][0].streams[0] == 0):
            assert time.monotonic() < deadline, "no batch from a replacement actor in 90 s"
            after += collect(collector, 1)
        assert collector.restarts == 1 and collector.dropped >= 1
        assert any(s[0].streams[0] == 2 for s in after)
        more = collect(collector, 6)
        assert {int(s[0].streams[0]) for s in more} == {0, 2}
    finally:
        collector.close()


def test_an_actor_that_raises_is_replaced(ray_address: str) -> None:
    """An exception inside an actor (here its env's step, on each actor's first start) is
    caught like a death: the batch is dropped, a new actor takes the slot, batches go on
    (``ordered``, so that both actors' batches come within the first six)."""
    cfg = toy_config(ray_address, ordered=True)
    net = MarioNet(3, 4)
    collector = RayCollector(
        cfg, 3, lambda: (acting_weights(net), 0, 0), seed=2, env_fn=make_failing_corridor_sync
    )
    collector.reset()
    try:
        streams = {int(b[0].streams[0]) for b in collect(collector, 6)}
    finally:
        collector.close()
    assert streams == {0, 2} and collector.restarts == 2 and collector.failures == [0, 0]


def test_actors_that_keep_raising_end_the_run_with_a_checkpoint(
    ray_address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An actor slot that fails 3 times in a row (the same error every start) would loop
    for ever: the run saves what the learner holds, says why in one line and returns 6."""
    run = tmp_path / "run"
    setup = prepare_run(
        {
            **TOY["dqn"],
            "run_dir": str(run),
            "wandb_mode": "disabled",
            "seed": 2**31,  # make_failing_corridor_sync: fails at every start
            "ray_address": ray_address,
            "num_actors": 2,
            "envs_per_actor": 2,
        }
    )
    runner = Runner(setup, actor_env_factory=make_failing_corridor_sync, n_actions=3)
    assert runner.run() == EXIT_ACTORS_FAILING
    err = capsys.readouterr().err  # (with Ray's own log lines from the session's cluster)
    lines = [line for line in err.splitlines() if line.startswith("mario train: error")]
    assert len(lines) == 1 and "failed 3 times in a row" in lines[0], err
    assert "the toy corridor failed on purpose" in lines[0] and "saved step 0" in lines[0]
    state, info, _ = load_checkpoint(run)
    assert info.step == 0 and state["counters"]["step"] == 0


@pytest.mark.slow
def test_a_lost_cluster_head_saves_and_exits_5(tmp_path: Path, home: Path) -> None:
    """kill -9 of a cluster head's GCS and raylet mid-run (its own cluster, not the session's):
    the trainer notices within seconds, saves what it learned (weights, replay memory),
    says so in one line and exits 5, which a restart policy resumes from."""
    import socket
    import tempfile

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="ray-head-", dir="/tmp")  # short: Ray's socket paths
    ray_bin = str(Path(MARIO).parent / "ray")
    env = mario_env(home)
    start = [ray_bin, "start", "--head", f"--port={port}", "--num-cpus=2", f"--temp-dir={temp}"]
    start += ["--include-dashboard=false", "--disable-usage-stats"]
    subprocess.run(start, env=env, check=True, capture_output=True, timeout=120)
    run = tmp_path / "run"
    try:
        proc = start_mario(
            *TRAIN,
            "--ray-address",
            f"127.0.0.1:{port}",
            "--num-actors",
            "2",
            "--total-steps",
            "100000",
            "--checkpoint-every",
            "200",
            "--run-dir",
            str(run),
            home=home,
        )
        first = wait_for_checkpoint(proc, run)
        head = [f"gcs_server.*{temp}", f"raylet.*{temp}"]
        for pattern in head:
            subprocess.run(["pkill", "-9", "-f", pattern], check=True)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=120)
        seconds = time.monotonic() - t0
    finally:
        subprocess.run(["pkill", "-9", "-f", temp], check=False)
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(temp, ignore_errors=True)
    assert proc.returncode == 5, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and "lost the Ray cluster" in lines[0], err
    _, info, _ = load_checkpoint(run)
    assert info.step >= first and f"saved step {info.step}" in lines[0]
    assert info.replay_path is not None  # the replay memory came along
    print(f"head killed: trainer saved and exited in {seconds:.1f} s")


def test_a_ppo_round_survives_a_killed_actor_and_keeps_its_weights(ray_address: str) -> None:
    """Synchronous PPO rollouts: a round is every env's ``n_steps`` with one weights version.
    SIGKILL an actor mid-round: a new actor plays the round's rollout again with the same
    weights, and the round comes back whole (all envs, ``n_steps`` steps, env order)."""
    n_steps = 1000  # at 2 ms per env step, >= 4 s: time to kill an actor in the middle of it
    cfg = build_config(
        {"algo": "ppo", "n_steps": n_steps, "ray_address": ray_address, "num_actors": 2}
        | {"envs_per_actor": K}
    )
    net = ActorCritic(3, 4)
    calls: list[int] = []

    def weights() -> tuple[dict[str, torch.Tensor], int, int]:
        calls.append(len(calls))
        return ppo_weights(net), calls[-1], 0

    import ray

    collector = RolloutCollector(cfg, 3, weights, seed=4, env_fn=make_slow_corridor_sync)
    collector.reset()
    actors = collector.actors
    try:
        rounds: list[list[Transition]] = []
        killed = False
        deadline = time.monotonic() + 120
        while len(rounds) < 2:
            assert time.monotonic() < deadline, f"{len(rounds)} rounds in 120 s"
            _, steps, episodes = collector.receive()
            if steps:
                rounds.append(steps)
                assert episodes and collector.versions == [calls[-1]] * 2
                # between rounds the actors are idle and answer (a call waits for collect)
                pids = [ray.get(a.__ray_call__.remote(lambda _: os.getpid())) for a in actors]
            elif rounds and not killed:  # the second round is being played: kill an actor
                playing = next(iter(collector.inflight.values()))  # whose rollout is not in
                os.kill(pids[playing], signal.SIGKILL)
                killed = True
    finally:
        collector.close()
    assert killed and collector.restarts == 1
    for steps in rounds:
        assert len(steps) == n_steps
        assert {s.obs.shape for s in steps} == {(2 * K, 4, 84, 84)}
        assert all(s.action.shape == (2 * K,) for s in steps)
    assert calls[-1] == 2  # reset's broadcast, then one per round


@pytest.mark.slow
@pytest.mark.parametrize(
    ("algo", "settings"),
    [
        ("dqn", {"checkpoint_every": 1000, "actor_steps": 8, "ordered": True}),
        ("ppo", {"checkpoint_every": 5000}),
    ],
)
def test_distributed_training_learns_the_toy_corridor(
    algo: str, settings: dict[str, Any], ray_address: str, tmp_path: Path
) -> None:
    """Two actors of 2 envs each, end to end (DQN: Ape-X actors acting with broadcast weights,
    batches into the same replay memory; PPO: synchronous rollouts), with the same learner and
    hooks, solve the corridor as the local algorithm does (tests/test_train.py: same settings,
    same threshold). DQN takes the batches in turn (``ordered``), so the run is the same on
    every machine: as they come, 1 run in 20 stayed at greedy 0.00 on a quiet machine."""
    setup = prepare_run(
        {
            **TOY[algo],
            **settings,
            "run_dir": str(tmp_path / "toy"),
            "log_every": 500,
            "wandb_mode": "disabled",
            "seed": 3,
            "ray_address": ray_address,
            "num_actors": 2,
            "envs_per_actor": 2,
        }
    )
    runner = Runner(setup, actor_env_factory=make_corridor_sync, n_actions=3)
    assert runner.run() == 0
    rate = greedy_success(runner.algo.policy())
    print(f"toy corridor, distributed {algo}: trained greedy {rate:.2f}")
    assert rate >= 0.9
    metrics = read_metrics(tmp_path / "toy" / "metrics.jsonl")
    train = [m for m in metrics if m["kind"] == "train"]
    assert train and all(m["actors"] == 2 for m in train)
    assert train[-1]["wire_bytes_per_step"] < 84 * 84  # compressed frames, never stacks
    assert any(m["kind"] == "episode" for m in metrics)
    assert list_checkpoints(tmp_path / "toy")[-1].step >= TOY[algo]["total_steps"]
    if algo == "ppo":  # every round but the last is learned from (the loop ends once the
        # total is stored, as the local PPO's does), in epochs 4 x minibatches 4 updates
        rounds = TOY["ppo"]["total_steps"] // (4 * 32)  # 4 envs x n_steps 32
        assert runner.algo.updates == (rounds - 1) * 4 * 4


TRAIN = [
    "train",
    "--preset",
    "quickstart",
    "--burn-in",
    "100",
    "--replay-size",
    "3000",
    "--log-every",
    "200",
    "--max-episode-steps",
    "60",
    "--wandb-mode",
    "offline",
]


@pytest.mark.slow
def test_mario_train_on_ray_with_the_emulator_stops_on_sigterm_and_resumes(
    ray_address: str, tmp_path: Path, home: Path
) -> None:
    """``mario train --ray-address`` with two actors stepping the real game (one per stage):
    checkpoints, episodes of both stages, an evaluation of both, the actors' figures in
    metrics.jsonl; SIGTERM saves and exits 0 within seconds as without Ray; ``--resume``
    continues on the cluster (the address is part of the run's config)."""
    run = tmp_path / "run"
    ray_args = ["--ray-address", ray_address, "--num-actors", "2", "--envs-per-actor", "1"]
    stage_args = ["--stages", "1-1", "1-2", "--eval-every", "400", "--eval-episodes", "1"]
    proc = start_mario(
        *TRAIN,
        *ray_args,
        *stage_args,
        "--total-steps",
        "100000",
        "--checkpoint-every",
        "400",
        "--run-dir",
        str(run),
        home=home,
    )
    try:
        wait_for_checkpoint(proc, run)
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=30)
        stop_seconds = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert stop_seconds < 10, f"took {stop_seconds:.1f} s to save and exit"
    state, info, _ = load_checkpoint(run)
    assert state["config"]["num_envs"] == 2 and state["config"]["ray_address"] == ray_address
    assert info.step >= 400 and info.replay_path is not None
    metrics = read_metrics(run / "metrics.jsonl")
    # one actor per stage: episodes of both, and an evaluation of both that picks the best
    assert {m["stage"] for m in metrics if m["kind"] == "episode"} == {"1-1", "1-2"}
    train = [m for m in metrics if m["kind"] == "train"]
    assert train and all(m["actors"] == 2 for m in train)
    evals = [m for m in metrics if m["kind"] == "eval"]
    assert evals and {"1-1/x_pos_mean", "1-2/x_pos_mean", "x_pos_mean"} <= set(evals[0])
    mean = (evals[0]["1-1/x_pos_mean"] + evals[0]["1-2/x_pos_mean"]) / 2
    assert evals[0]["x_pos_mean"] == pytest.approx(mean, abs=0.01)
    best = json.loads((run / "best.json").read_text())
    assert best["step"] == evals[0]["step"]
    total = info.step + 256
    result = run_cli("train", "--resume", str(run), "--total-steps", str(total), home=home)
    assert result.returncode == 0, result.stderr
    assert "replay memory restored" in result.stderr
    resumed, _, _ = load_checkpoint(run)
    assert resumed["counters"]["step"] >= total
    assert resumed["counters"]["updates"] > state["counters"]["updates"]


@pytest.mark.slow
def test_mario_train_ppo_on_ray_with_the_emulator_and_resume(
    ray_address: str, tmp_path: Path, home: Path
) -> None:
    """``mario train --algo ppo --ray-address``: two actors play the real game (one stage
    each) in synchronous rollouts; PPO learns from them, checkpoints, evaluates both stages;
    ``--resume`` continues on the cluster."""
    run = tmp_path / "run"
    args = [
        "train", "--algo", "ppo", "--ray-address", ray_address, "--num-actors", "2",
        "--stages", "1-1", "1-2", "--n-steps", "64", "--epochs", "1", "--minibatches", "2",
        "--max-episode-steps", "40", "--eval-every", "256", "--eval-episodes", "1",
        "--checkpoint-every", "256", "--log-every", "128", "--wandb-mode", "offline",
    ]  # fmt: skip
    result = run_cli(*args, "--total-steps", "512", "--run-dir", str(run), home=home)
    assert result.returncode == 0, result.stderr
    state, info, _ = load_checkpoint(run)
    assert state["algo"] == "ppo" and info.step == 512
    assert state["config"]["ray_address"] == ray_address and state["config"]["num_envs"] == 2
    assert state["counters"]["updates"] == 3 * 2  # 4 rounds of 2 x 64, the last not learned
    metrics = read_metrics(run / "metrics.jsonl")
    assert {m["stage"] for m in metrics if m["kind"] == "episode"} == {"1-1", "1-2"}
    train = [m for m in metrics if m["kind"] == "train"]
    assert train and all(m["actors"] == 2 for m in train)
    assert any("approx_kl" in m for m in train)
    evals = [m for m in metrics if m["kind"] == "eval"]
    assert evals and {"1-1/x_pos_mean", "1-2/x_pos_mean"} <= set(evals[0])
    result = run_cli("train", "--resume", str(run), "--total-steps", "768", home=home)
    assert result.returncode == 0, result.stderr
    resumed, _, _ = load_checkpoint(run)
    assert resumed["counters"]["step"] == 768
    assert resumed["counters"]["updates"] > state["counters"]["updates"]


@pytest.mark.slow
def test_ray_address_local_starts_a_private_instance(tmp_path: Path, home: Path) -> None:
    """``--ray-address local`` (Ray's own convention) needs no ``ray start``: the trainer
    starts a private Ray instance on this machine, its actors play, and it ends with the run
    (a subprocess: this one may hold the module's instance)."""
    run = tmp_path / "run"
    args = ["--ray-address", "local", "--num-actors", "2", "--total-steps", "256"]
    result = run_mario(*TRAIN, *args, "--run-dir", str(run), home=home)
    assert result.returncode == 0, result.stderr
    state, info, _ = load_checkpoint(run)
    assert info.step == 256 and state["config"]["ray_address"] == "local"
    train = [m for m in read_metrics(run / "metrics.jsonl") if m["kind"] == "train"]
    assert train and all(m["actors"] == 2 for m in train)


def test_an_unreachable_cluster_is_one_line_and_exit_5_even_in_a_container(
    tmp_path: Path, home: Path
) -> None:
    """A cluster that does not answer may be down for now: exit 5 (not 2, not idling with
    --idle-when-done), so a restart policy keeps trying until it is back."""
    for extra in ([], ["--idle-when-done"]):
        args = [*TRAIN, "--ray-address", "127.0.0.1:1", "--run-dir", str(tmp_path / "r"), *extra]
        result = run_mario(*args, home=home)  # (this process is on the module's cluster)
        assert result.returncode == 5, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "cannot reach the Ray cluster" in lines[0], result.stderr
        assert "ray start --head" in lines[0] and not (tmp_path / "r").exists()


def test_a_process_on_one_cluster_is_refused_another(
    ray_address: str, tmp_path: Path, home: Path
) -> None:
    """The Python API in a process that joined a cluster: another address is refused in one
    line (it used to train on the joined one, whatever the address said)."""
    args = [*TRAIN, "--ray-address", "127.0.0.1:1", "--run-dir", str(tmp_path / "r")]
    result = run_cli(*args, home=home)
    assert_one_line_error(result, "already connected to the Ray cluster", ray_address)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--ray-address", "auto", "--num-actors", "0"], ["num_actors", "must be >= 1"]),
        (["--ray-address", ":"], ["bad value ':' for ray_address", "HOST:PORT"]),
        (["--stages", "1-1", "1-5"], ["unknown stage '1-5'"]),
        (["--stages", "1", "--num-envs", "2"], ["4 stages need at least as many envs"]),
    ],
)
def test_bad_distributed_input_is_one_line(
    args: list[str], needles: list[str], tmp_path: Path, home: Path
) -> None:
    common = TRAIN if "ppo" not in args else ["train", "--wandb-mode", "offline"]
    result = run_cli(*common, *args, "--run-dir", str(tmp_path / "run"), home=home)
    assert_one_line_error(result, *needles)
    assert not list_checkpoints(tmp_path / "run")


def test_stages_are_spread_over_the_envs() -> None:
    """Env i plays the i-th stage of the list, cycling (a world is its four stages)."""
    from mario.game.env import make_sync_vec_env

    cfg = build_config({"stages": "1-1 4", "num_envs": 5})
    assert cfg.run.stage_list() == ["1-1", "4-1", "4-2", "4-3", "4-4"]
    envs = make_sync_vec_env(3, ["1-1", "4-2"], seed=0)
    try:
        _, info = envs.reset()
        assert [(int(w), int(s)) for w, s in zip(info["world"], info["stage"], strict=True)] == [
            (1, 1),
            (4, 2),
            (1, 1),
        ]
    finally:
        envs.close()


@pytest.mark.slow
def test_local_training_on_several_stages_logs_each(tmp_path: Path, home: Path) -> None:
    """--stages without Ray: the local emulator processes play the list, and the episodes and
    the train log name their stages."""
    run = tmp_path / "run"
    args = ["--stages", "1-1", "1-2", "--num-envs", "2", "--max-episode-steps", "30"]
    result = run_cli(*TRAIN, *args, "--total-steps", "200", "--run-dir", str(run), home=home)
    assert result.returncode == 0, result.stderr
    metrics = read_metrics(run / "metrics.jsonl")
    assert {m["stage"] for m in metrics if m["kind"] == "episode"} == {"1-1", "1-2"}
    last = [m for m in metrics if m["kind"] == "train"][-1]
    assert {"x_pos_mean100/1-1", "x_pos_mean100/1-2"} <= set(last)


def test_more_actors_than_the_clusters_cpus_is_one_line(
    ray_address: str, tmp_path: Path, home: Path
) -> None:
    result = run_cli(
        *TRAIN,
        "--ray-address",
        ray_address,
        "--num-actors",
        "3",
        "--run-dir",
        str(tmp_path / "r"),
        home=home,
    )
    assert_one_line_error(result, "num_actors", "2 CPUs")


@pytest.mark.slow
def test_bench_distributed_measures_wire_ingest_and_both_trainers(ray_address: str) -> None:
    """``mario bench distributed``'s figures on the real game: compressed batches much smaller
    than raw frames, a learner that takes them in, and both trainers learning at the same
    replay ratio (on the session's Ray instance)."""
    from mario.bench.distributed import bench_distributed, format_distributed

    result = bench_distributed(seconds=2.0, repeats=1, batches=2, burn_in=64)
    assert 0 < result["bytes_per_transition"] < 84 * 84 / 4  # zlib: > 4x on Mario frames
    assert result["compression"] > 4 and result["actor_steps_per_s"] > 0
    assert result["ingest_transitions_per_s"] > 0
    assert result["weights_bytes"] > 1_000_000  # the full-width online head, float16
    for run in ("train_local", "train_ray"):
        assert result[run]["steps_per_s"] > 0 and result[run]["updates_per_s"] > 0, run
    assert result["ray_vs_local"] > 0
    assert "ray / local" in format_distributed(result)


@pytest.mark.slow
def test_two_node_cluster_loses_a_node_and_training_goes_on(tmp_path: Path) -> None:
    """A real two-node cluster (``ray.cluster_utils.Cluster``, in its own process): the node
    with the actors is removed mid-run, they are replaced (the survivor node has one CPU;
    the second replacement waits until a new node joins), and the run reaches its total."""
    import subprocess
    import sys

    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "tests.ray_two_nodes", str(run)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
        env=mario_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == 0 and outcome["step"] >= 2400, outcome
    assert [e[0] for e in outcome["events"]] == ["removed", "added"], outcome
    removed_at = outcome["events"][0][1]
    assert "died" in result.stderr  # the learner said which actors it replaced
    train = [m for m in read_metrics(run / "metrics.jsonl") if m["kind"] == "train"]
    after = [m for m in train if m["step"] > removed_at]
    assert after and after[-1]["actor_restarts"] >= 1 and after[-1]["actors"] == 2
    assert list_checkpoints(run)[-1].step >= 2400


class _Recorder:
    """A vector env that keeps every observation acted on and every true next one."""

    def __init__(self, envs: Any) -> None:
        self.envs = envs
        self.seen: list[tuple[np.ndarray, np.ndarray]] = []

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        self.last, info = self.envs.reset(**kwargs)
        return self.last, info

    def step(self, actions: np.ndarray) -> tuple:
        obs, reward, terminated, truncated, info = self.envs.step(actions)
        true_next = obs.copy()
        for i in np.flatnonzero(terminated | truncated):
            true_next[i] = info["final_obs"][i]
        self.seen.append((self.last.copy(), true_next))
        self.last = obs
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self.envs.close()


def test_a_ppo_rollout_crosses_one_frame_per_step_and_restacks_exactly() -> None:
    """An actor's PPO rollout sends newest frames plus its starting stacks; the learner's
    rebuilt stacks equal, step for step, the ones the frame-stack wrapper gave the actor,
    across episode ends (the corridor's episodes last <= 25 steps) and from one rollout to
    the next."""
    cfg = build_config({"algo": "ppo", "n_steps": 60, "num_envs": 2 * K, "envs_per_actor": K})
    recorders: list[_Recorder] = []

    def env_fn(num_envs: int, seed: int) -> Any:
        recorders.append(_Recorder(make_corridor_sync(num_envs, seed)))
        return recorders[-1]

    actor = EnvActor(cfg, 3, 1, seed=5, env_fn=env_fn)
    rebuilt: list[Transition] = []
    batches = [actor.collect() for _ in range(2)]
    for batch in batches:
        assert batch.shape == (60, K, 84, 84) and batch.stack == 4
        assert batch.nbytes() < 60 * K * 84 * 84  # frames, never whole stacks
        rebuilt += restack(batch)
    seen = recorders[0].seen
    assert len(rebuilt) == len(seen) == 120
    assert sum(int(t.terminated.sum() + t.truncated.sum()) for t in rebuilt) >= 4
    for t, (step, (obs, true_next)) in enumerate(zip(rebuilt, seen, strict=True)):
        assert step.obs.shape == (K, 4, 84, 84)
        np.testing.assert_array_equal(step.obs, obs, err_msg=f"obs of step {t}")
        np.testing.assert_array_equal(step.next_obs, true_next, err_msg=f"next of step {t}")
    with pytest.raises(ValueError, match="rollout"):
        restack(dataclasses.replace(batches[0], head=b""))
