"""``mario bench distributed``: what remote actors cost and give, measured on this machine.

``wire``
    An :class:`~mario.distributed.actor.EnvActor` (the real game, no Ray) fills batches as it
    would on a CPU machine, acting with a (fresh) network of the run's size on one CPU
    thread: its agent steps/s on one core and the bytes per transition its compressed
    batches take (newest frames only, zlib level 1), against the 7,056 raw bytes of one
    84x84 frame.
``ingest``
    The learner's side of those batches: decompress and store them in a DQN's replay memory
    on ``device``, repeated: transitions/s the learner can take in (its ceiling on actors),
    and the bytes of one weight broadcast (the online head in float16).
``train``
    Learning speed: ``mario train``'s loop for ``seconds`` after the burn-in, once with
    ``num_actors`` Ray actors of ``envs_per_actor`` emulators (a local Ray instance unless
    ``ray_address``), once as the single-process trainer with as many emulator processes,
    both at the same replay ratio: agent steps/s and updates/s of each.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mario.algos.dqn.settings import DQNConfig
from mario.bench.measure import machine
from mario.bench.train import _NEVER, _Measure, _quiet
from mario.training.runner import Runner
from mario.training.setup import prepare_run

RAW_FRAME_BYTES = 84 * 84


def _wire(cfg: Any, n_actions: int, batches: int) -> tuple[list[Any], dict[str, Any]]:
    import torch

    from mario.algos.dqn.algorithm import acting_weights, network
    from mario.distributed.actor import EnvActor
    from mario.distributed.wire import pack_weights

    actor = EnvActor(cfg, n_actions, 0, seed=0)
    net = network(cfg.algorithm, cfg.context(n_actions, torch.device("cpu")))
    # past the burn-in: the net acts
    actor.set_weights(pack_weights(acting_weights(net)), 0, cfg.algorithm.burn_in)
    try:
        start = time.perf_counter()
        out = [actor.collect() for _ in range(batches)]
        seconds = time.perf_counter() - start
    finally:
        actor.close()
    steps = sum(b.steps for b in out)
    wire = sum(b.nbytes() for b in out)
    return out, {
        "actor_steps_per_s": round(steps / seconds, 1),
        "bytes_per_transition": round(wire / steps, 1),
        "frame_bytes_per_transition": round(
            sum(len(b.frames) + len(b.finals) for b in out) / steps, 1
        ),
        "compression": round(RAW_FRAME_BYTES / (wire / steps), 1),
        "transitions": steps,
    }


def _ingest(
    cfg: Any, n_actions: int, device: str, batches: list[Any], seconds: float, repeats: int
) -> dict[str, Any]:
    import torch

    from mario.algos.dqn.algorithm import DQN, acting_weights
    from mario.distributed.wire import decode

    algo = DQN(cfg.algorithm, cfg.context(n_actions, torch.device(device)))
    rates = []
    for _ in range(repeats):
        stored, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for batch in batches:
                algo.observe(decode(batch), 0)
                stored += batch.steps
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        rates.append(stored / (time.perf_counter() - start))
    weights = acting_weights(algo.net)
    return {
        "ingest_transitions_per_s": round(statistics.median(rates), 1),
        "weights_bytes": int(sum(w.nbytes for w in weights.values())),
    }


def _train(values: dict[str, Any], seconds: float, burn_in: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mario-bench-dist-") as tmp:
        setup = prepare_run({**values, "run_dir": str(Path(tmp) / "run")})
        measure = _Measure(1.0, seconds, 3, burn_in)
        runner = Runner(setup, argv=["bench", "distributed"], hooks=[measure])
        if runner.run() != 0 or not measure.rates:
            raise KeyboardInterrupt("mario bench distributed was stopped before it finished")
    return {
        "steps_per_s": round(statistics.median(measure.rates), 1),
        "updates_per_s": round(measure.updates / measure.seconds, 2),
    }


def bench_distributed(
    seconds: float = 10.0,
    num_actors: int = 2,
    envs_per_actor: int = 1,
    device: str = "cpu",
    *,
    repeats: int = 3,
    ray_address: str = "",
    batches: int = 8,
    burn_in: int = 1000,
    replay_size: int = 20_000,
    train: bool = True,
) -> dict[str, Any]:
    """The three measurements of the module docstring; ``train=False`` skips the slow one."""
    from mario.config import build_config
    from mario.training.setup import action_set_size

    streams = num_actors * envs_per_actor
    values: dict[str, Any] = {
        "num_envs": streams,
        "device": device,
        "wandb_mode": "disabled",
        "total_steps": _NEVER,
        "checkpoint_every": _NEVER,
        "log_every": _NEVER,
        "replay_size": replay_size,
        "save_replay": False,
        "burn_in": burn_in,
    }
    dist = {"num_actors": num_actors, "envs_per_actor": envs_per_actor}
    cfg = build_config({**values, **dist, "ray_address": "auto"})
    n_actions = action_set_size(cfg.env.actions)
    dqn = cfg.algorithm
    assert isinstance(dqn, DQNConfig)  # Ape-X: the wire and the ingest are DQN's
    result: dict[str, Any] = {
        "machine": machine(),
        "device": device,
        "num_actors": num_actors,
        "envs_per_actor": envs_per_actor,
        "actor_steps": cfg.dist.actor_steps,
        "replay_ratio": dqn.replay_ratio,
    }
    with _quiet():
        sample, wire = _wire(cfg, n_actions, batches)
        result.update(wire)
        result.update(_ingest(cfg, n_actions, device, sample, seconds / 4, repeats))
        if train:
            result["train_local"] = _train(values, seconds, burn_in)
            result["train_ray"] = _train_on_ray(values, dist, seconds, burn_in, ray_address)
    if train:
        result["ray_vs_local"] = round(
            result["train_ray"]["steps_per_s"] / result["train_local"]["steps_per_s"], 3
        )
    return result


def _train_on_ray(
    values: dict[str, Any], dist: dict[str, Any], seconds: float, burn_in: int, address: str
) -> dict[str, Any]:
    import os

    import ray

    from mario.distributed.cluster import set_ray_defaults

    started = False
    if not address and not ray.is_initialized():
        set_ray_defaults()
        ray.init(
            num_cpus=len(os.sched_getaffinity(0)),
            include_dashboard=False,
            _temp_dir=tempfile.mkdtemp(prefix="ray-", dir="/tmp"),
        )
        started = True
    try:
        target = address or ray.get_runtime_context().gcs_address
        return _train({**values, **dist, "ray_address": target}, seconds, burn_in)
    finally:
        if started:
            ray.shutdown()


def format_distributed(result: dict[str, Any]) -> str:
    lines = [
        f"machine: {result['machine']}",
        f"actor (one core, real game, random play): {result['actor_steps_per_s']:,.0f} steps/s",
        f"wire: {result['bytes_per_transition']:,.0f} bytes/transition "
        f"({result['compression']}x smaller than a raw 84x84 frame)",
        f"learner ingest on {result['device']}: {result['ingest_transitions_per_s']:,.0f} "
        "transitions/s (decompress + replay add)",
        f"weight broadcast: {result['weights_bytes'] / 2**20:.2f} MiB (float16 online head)",
    ]
    if "train_ray" in result:
        ray_, local = result["train_ray"], result["train_local"]
        lines += [
            f"train, {result['num_actors']} Ray actors x {result['envs_per_actor']} envs: "
            f"{ray_['steps_per_s']:,.1f} steps/s, {ray_['updates_per_s']} updates/s",
            f"train, single process, same envs: {local['steps_per_s']:,.1f} steps/s, "
            f"{local['updates_per_s']} updates/s (replay ratio {result['replay_ratio']})",
            f"ray / local: {result['ray_vs_local']}",
        ]
    return "\n".join(lines)
