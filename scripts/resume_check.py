"""Check that resuming a run restores what the README says, on the device it resumes on.

    python scripts/resume_check.py RUN [--device cuda] [--json OUT.json]

Loads RUN's newest checkpoint, builds the runner ``mario train --resume`` would build (in a
copy of RUN, so nothing in RUN changes) and compares, item by item, what it holds with what
the checkpoint holds: the algorithm's state (weights, optimizer state with Adam's moments and
step, the policy's RNG on the device), counters, ε, the torch CPU and CUDA RNG states, the
replay memory's size (DQN). Then (DQN) takes one learner update from the restored replay
(fused Adam on the restored state). Prints one JSON object; exits 1 if any item differs.
Used by scripts/gpu_check.sh on the GPU host; runs on CPU too.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from mario.storage.checkpoints import load_checkpoint, upgrade_state
from mario.training.runner import Runner
from mario.training.setup import prepare_run


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        a, b = torch.as_tensor(a).cpu(), torch.as_tensor(b).cpu()
        return a.shape == b.shape and bool(torch.equal(a.to(b.dtype), b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def check(run: Path, device: str | None = None) -> dict[str, Any]:
    state, info, _ = load_checkpoint(run, fallback=True)
    state = upgrade_state(state, info.state_path)
    with tempfile.TemporaryDirectory(prefix="mario-resume-check-") as tmp:
        copy = Path(tmp) / run.name
        ckpt = copy / "checkpoints" / info.path.name
        ckpt.parent.mkdir(parents=True)
        shutil.copytree(info.path, ckpt)
        overrides: dict[str, Any] = {"wandb_mode": "disabled"}
        if device:
            overrides["device"] = device
        setup = prepare_run(overrides, resume=str(ckpt))
        runner = Runner(setup, argv=["resume-check"])
        try:
            algo: Any = runner.algo
            dev = runner.device
            saved_cuda = state["rng"]["cuda"]
            items: dict[str, bool] = {
                # weights, optimizer (Adam moments and step), the policy's RNG, counters
                "algorithm_state": _same(algo.state_dict(), state["algorithm"]),
                "updates": algo.updates == state["counters"]["updates"],
                "step": runner.step == state["counters"]["step"],
                "episodes": runner.stats.episodes == state["counters"]["episodes"],
                "torch_cpu_rng": _same(torch.get_rng_state(), state["rng"]["torch"]),
            }
            if state["algo"] == "dqn":
                items["replay_size"] = len(algo.replay) >= info_replay_size(ckpt)
                items["epsilon"] = (
                    abs(algo.epsilon(runner.step) - state["status"]["epsilon"]) < 1e-12
                )
            if dev.type == "cuda":
                items["cuda_rng"] = bool(saved_cuda) and _same(
                    torch.cuda.get_rng_state_all()[: len(saved_cuda)], saved_cuda
                )
            params_on = {str(p.device) for p in algo.net.parameters()}
            optimizer = algo.learner.optimizer if state["algo"] == "dqn" else algo.optimizer
            moments_on = {
                str(v.device)
                for s in optimizer.state.values()
                for v in s.values()
                if isinstance(v, torch.Tensor)
            }
            update: dict[str, Any] = {}
            if state["algo"] == "dqn" and len(algo.replay) >= algo.cfg.batch_size:
                batch = algo.replay.sample(algo.cfg.batch_size)
                out = algo.learner.update(batch)
                update = {k: out[k] for k in ("loss", "q_mean", "grad_norm")}
                items["update_finite"] = all(
                    torch.isfinite(torch.tensor(v)).item() for v in update.values()
                )
            return {
                "checkpoint": str(info.path),
                "algo": state["algo"],
                "device": str(dev),
                "step": runner.step,
                "updates": algo.updates,
                "params_on": sorted(params_on),
                "optimizer_state_on": sorted(moments_on),
                "cuda_rng_states_saved": len(saved_cuda),
                "items": items,
                "update_after_restore": update,
                "ok": all(items.values()),
            }
        finally:
            runner.tracker.close()
            setup.release()


def info_replay_size(ckpt: Path) -> int:
    """Transitions the saved replay memory holds (0 without one), read from its own file."""
    state = ckpt / "replay" / "state.pt"
    if not state.is_file():
        return 0
    return int(torch.load(state, map_location="cpu", weights_only=True)["num_valid"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder or checkpoint")
    parser.add_argument("--device", help="resume on this device (default: the run's)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    result = check(args.run, args.device)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
