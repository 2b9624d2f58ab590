"""Check that resuming a run restores what the README says, on the device it resumes on.

    python scripts/resume_check.py RUN [--device cuda] [--json OUT.json]

Loads RUN's newest checkpoint, builds the trainer ``mario train --resume`` would build (in a
copy of RUN, so nothing in RUN changes) and compares, item by item, what the trainer holds
with what the checkpoint holds: weights, optimizer state (Adam moments and step), counters,
epsilon, the torch CPU and CUDA RNG states, the policy's RNG (on the device), the replay
memory's size. Then takes one learner update from the restored replay (fused Adam on the
restored state). Prints one JSON object; exits 1 if any item differs.
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

from mario.checkpoint import load_checkpoint
from mario.train import Trainer, prepare_run


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
    with tempfile.TemporaryDirectory(prefix="mario-resume-check-") as tmp:
        copy = Path(tmp) / run.name
        ckpt = copy / "checkpoints" / info.path.name
        ckpt.parent.mkdir(parents=True)
        shutil.copytree(info.path, ckpt)
        overrides: dict[str, Any] = {"wandb_mode": "disabled"}
        if device:
            overrides["device"] = device
        setup = prepare_run(overrides, resume=str(ckpt))
        trainer = Trainer(setup, argv=["resume-check"])
        try:
            dev = trainer.device
            saved_cuda = state["rng"]["cuda"]
            items: dict[str, bool] = {
                "weights": _same(trainer.net.state_dict(), state["net"]),
                "optimizer": _same(
                    trainer.learner.optimizer.state_dict(), state["learner"]["optimizer"]
                ),
                "updates": trainer.learner.updates == state["counters"]["updates"],
                "step": trainer.step == state["counters"]["step"],
                "episodes": trainer.episodes == state["counters"]["episodes"],
                "epsilon": abs(trainer.epsilon - state["exploration"]["epsilon"]) < 1e-12,
                "torch_cpu_rng": _same(torch.get_rng_state(), state["rng"]["torch"]),
                "policy_rng": _same(trainer.policy.generator.get_state(), state["policy_rng"]),
                "replay_size": len(trainer.replay) == info_replay_size(ckpt),
            }
            if dev.type == "cuda":
                items["cuda_rng"] = bool(saved_cuda) and _same(
                    torch.cuda.get_rng_state_all()[: len(saved_cuda)], saved_cuda
                )
            params_on = {str(p.device) for p in trainer.net.parameters()}
            moments_on = {
                str(v.device)
                for s in trainer.learner.optimizer.state.values()
                for v in s.values()
                if isinstance(v, torch.Tensor)
            }
            update: dict[str, Any] = {}
            if len(trainer.replay) >= trainer.cfg.batch_size:
                batch = trainer.replay.sample(trainer.cfg.batch_size)
                out = trainer.learner.update(batch)
                update = {k: out[k] for k in ("loss", "q_mean", "grad_norm")}
                items["update_finite"] = all(
                    torch.isfinite(torch.tensor(v)).item() for v in update.values()
                )
            return {
                "checkpoint": str(info.path),
                "device": str(dev),
                "step": trainer.step,
                "updates": trainer.learner.updates,
                "replay_transitions": len(trainer.replay),
                "params_on": sorted(params_on),
                "optimizer_state_on": sorted(moments_on),
                "cuda_rng_states_saved": len(saved_cuda),
                "items": items,
                "update_after_restore": update,
                "ok": all(items.values()),
            }
        finally:
            trainer.tracker.close()
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
