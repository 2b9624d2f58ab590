"""Benchmarks behind ``mario bench env|replay|learner|train|distributed``: numbers for the docs.

Every figure is the median of ``repeats`` timed runs; ratios come from runs made side by
side in the same process, since the machines are shared and noisy.
"""

from __future__ import annotations

from typing import Any

from mario.bench.measure import machine


def run(args: Any) -> dict[str, Any]:
    """Dispatch ``mario bench WHAT`` (``args`` from the CLI)."""
    if args.what == "env":
        from mario.bench.env import bench_env

        return bench_env(seconds=args.seconds, repeats=args.repeats, max_envs=args.max_envs)
    from mario.device import resolve_device  # torch: not needed by the env benchmark

    device = str(resolve_device(args.device))
    if args.what == "replay":
        from mario.bench.replay import bench_replay

        return {"machine": machine(), **bench_replay(device=device)}
    if args.what == "learner":
        from mario.bench.learner import bench_learner

        cuda = device.startswith("cuda")
        rows = []
        # bf16 autocast and torch.compile exist only on CUDA: "auto" tries both ways there
        for compile in _switch(args.compile, cuda):
            # the learner captures no CUDA graph when it compiles
            for graph in (False,) if compile else _switch(args.cuda_graph, cuda):
                for amp in _switch(args.amp, cuda):
                    rows += bench_learner(
                        batch_sizes=args.batch_sizes or (32, 64, 128, 256),
                        device=device,
                        steps=args.steps,
                        repeats=args.repeats,
                        amp=amp,
                        compile=compile,
                        cuda_graph=graph,
                    )
        return {"machine": machine(), "rows": rows}
    if args.what == "distributed":
        from mario.bench.distributed import bench_distributed

        return bench_distributed(
            seconds=args.seconds,
            num_actors=args.num_actors,
            envs_per_actor=args.envs_per_actor,
            device=device,
            repeats=args.repeats,
            ray_address=args.ray_address,
        )
    from mario.bench.train import bench_train, preset_overrides

    overrides = preset_overrides(args.preset) if args.preset else {}
    if args.algo:
        overrides["algo"] = args.algo
    return bench_train(
        seconds=args.seconds,
        num_envs=args.num_envs,
        device=device,
        repeats=args.repeats,
        overrides=overrides,
    )


def _switch(choice: str, cuda: bool) -> tuple[bool, ...]:
    """``--amp``/``--compile``/``--cuda-graph``: off, on, both, or auto (both on CUDA, else off)."""
    if choice == "auto":
        choice = "both" if cuda else "off"
    return {"off": (False,), "on": (True,), "both": (False, True)}[choice]


def format_result(what: str, result: dict[str, Any]) -> str:
    if what == "env":
        from mario.bench.env import format_env

        return format_env(result)
    if what == "train":
        from mario.bench.train import format_train

        return format_train(result)
    if what == "distributed":
        from mario.bench.distributed import format_distributed

        return format_distributed(result)
    lines = [f"machine: {result.get('machine')}"]
    for key, value in result.items():
        if key == "machine":
            continue
        if isinstance(value, list):
            lines.append(f"{key}:")
            lines.extend(f"  {row}" for row in value)
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines)
