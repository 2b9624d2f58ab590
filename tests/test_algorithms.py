"""The algorithms through `mario train`: --algo, bad input, resume, num_envs changes, old
checkpoints, TensorBoard, `import mario` staying cheap, and a third algorithm registered
from this file (the registry, mario/algos/__init__.py)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mario import algos, cli
from mario.algos.base import ActionValues
from mario.algos.spec import AlgorithmSpec, Context
from mario.config import ConfigError, build_config
from mario.game import backends
from mario.settings import at_least, setting, within
from mario.storage.checkpoints import list_checkpoints, load_checkpoint, save_checkpoint
from mario.storage.metrics import read_metrics
from tests.helpers import assert_one_line_error, run_cli, snapshot
from tests.videos import decode_video

PPO_SMALL = [
    "--algo",
    "ppo",
    "--preset",
    "quickstart-ppo",
    "--num-envs",
    "2",
    "--n-steps",
    "32",
    "--log-every",
    "64",
    "--checkpoint-every",
    "128",
    "--max-episode-steps",
    "60",
    "--wandb-mode",
    "disabled",
]


def test_import_mario_loads_neither_torch_nor_the_emulator() -> None:
    code = (
        "import sys, mario; mods = set(sys.modules); "
        "print(sorted(m for m in ('torch', 'nes_py', 'gymnasium', 'cv2') if m in mods))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out
    assert out.stderr == ""


def test_bad_algorithm_options_get_one_line(tmp_path: Path, home: Path) -> None:
    cases = [
        (["--algo", "a3c"], ["--algo", "a3c", "dqn", "ppo"]),
        (["--algo", "ppo", "--replay-size", "1000"], ["replay_size is a DQN option", "ppo"]),
        (["--n-steps", "64"], ["n_steps is a PPO option", "dqn"]),
        (["--algo", "ppo", "--n-steps", "0"], ["n_steps", ">= 1"]),
    ]
    for args, needles in cases:
        result = run_cli("train", *args, "--run-dir", str(tmp_path / "r"), home=home)
        assert_one_line_error(result, *needles)
    assert not list_checkpoints(tmp_path / "r")


@pytest.mark.slow
def test_ppo_trains_resumes_evaluates_and_replays(tmp_path: Path, home: Path) -> None:
    run = tmp_path / "run"
    # 9.x's reward (its info carries a reward_components dict through the vector env), and
    # the previous action painted into the frames: eval and replay build the same pipeline;
    # a half-width network, which resume, eval and replay rebuild from the checkpoint
    result = run_cli(
        "train", *PPO_SMALL, "--total-steps", "256", "--reward", "upstream", "--prev-action",
        "--net-width", "0.5", "--run-dir", str(run), home=home,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    train = [m for m in read_metrics(run / "metrics.jsonl") if m["kind"] == "train"]
    for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "lr"):
        assert key in train[-1], key
    info = json.loads(run_cli("info", str(run), home=home).stdout)
    assert info["algo"] == "ppo" and info["step"] == 256 and info["updates"] > 0
    assert info["network"]["kind"] == "actor_critic" and info["network"]["width"] == "0.5"
    assert info["game_backend"] == info["versions"]["game_backend"] == backends.NAME
    assert load_checkpoint(run)[0]["config"]["reward"] == "upstream"
    assert load_checkpoint(run)[0]["config"]["prev_action"] is True

    # resuming a PPO run as DQN is refused, nothing touched
    before = snapshot(run)
    refused = run_cli("train", "--resume", str(run), "--algo", "dqn", home=home)
    assert_one_line_error(refused, "trained with algo ppo", "can't change its algorithm")
    assert snapshot(run) == before

    resumed = run_cli("train", "--resume", str(run), "--total-steps", "384", home=home)
    assert resumed.returncode == 0, resumed.stderr
    state, _, _ = load_checkpoint(run)
    assert state["algo"] == "ppo" and state["counters"]["step"] == 384
    assert state["algorithm"]["updates"] > info["updates"]

    report = json.loads(
        run_cli("eval", str(run), "--episodes", "2", "--max-steps", "50", "--json").stdout
    )
    assert report["algo"] == "ppo" and report["stages"]["1-1"]["episodes"] == 2
    video = tmp_path / "ppo.mp4"
    replay = run_cli(
        "replay", str(run), "--overlay", "--max-steps", "30", "--out", str(video), home=home
    )
    assert replay.returncode == 0, replay.stderr
    assert video.stat().st_size > 0


@pytest.mark.slow
def test_a_dqn_run_resumes_with_more_envs_replay_included(run_copy: Path, home: Path) -> None:
    """The move from a laptop to a GPU machine: 1 env (the finished run's 400 steps), then 4."""
    resumed = run_cli(
        "train", "--resume", str(run_copy), "--num-envs", "4", "--total-steps", "520", home=home
    )
    assert resumed.returncode == 0, resumed.stderr
    restored = [line for line in resumed.stderr.splitlines() if "replay memory restored" in line]
    assert restored and int(restored[0].split(":")[1].split()[0]) >= 390, resumed.stderr
    state, _, _ = load_checkpoint(run_copy)
    assert state["config"]["num_envs"] == 4 and state["counters"]["step"] >= 520


@pytest.mark.slow
def test_a_checkpoint_of_the_dqn_only_trainer_still_resumes(
    run_copy: Path, tmp_path: Path, home: Path
) -> None:
    """State format 1 (before algorithms were pluggable) is upgraded on load."""
    state, info, _ = load_checkpoint(run_copy)  # step 400
    algorithm = state.pop("algorithm")
    old = {  # the old trainer's layout
        **{k: v for k, v in state.items() if k not in ("algo", "status")},
        "format": 1,
        "net": algorithm["net"],
        "learner": algorithm["learner"],
        "policy_rng": algorithm["policy_rng"],
        "exploration": {"kind": "epsilon", "epsilon": 0.5, "schedule": "linear"},
        "config": {k: v for k, v in state["config"].items() if k not in ("algo", "tensorboard")},
    }
    old_run = tmp_path / "old"
    save_checkpoint(old_run, info.step, old, write_replay=None)
    shown = json.loads(run_cli("info", str(old_run), home=home).stdout)
    assert shown["algo"] == "dqn" and shown["epsilon"] == 0.5 and shown["step"] == 400
    resumed = run_cli("train", "--resume", str(old_run), "--total-steps", "500", home=home)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and "from step 400" in resumed.stderr
    evaluated = run_cli("eval", str(old_run), "--episodes", "1", "--max-steps", "20")
    assert evaluated.returncode == 0, evaluated.stderr

    future = {**old, "format": 99}
    save_checkpoint(tmp_path / "future", 5, future, write_replay=None)
    assert_one_line_error(run_cli("info", str(tmp_path / "future")), "format 99")


@pytest.mark.slow
def test_tensorboard_logs_the_same_metrics(tmp_path: Path, home: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    result = run_cli(
        "train", "--preset", "quickstart", "--total-steps", "400", "--burn-in", "100",
        "--log-every", "100", "--max-episode-steps", "50", "--tensorboard", "--wandb-mode",
        "disabled",
        "--run-dir", str(run), home=home,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "train/loss" in tags and "train/epsilon" in tags and "episode/return" in tags
    losses = [m["loss"] for m in read_metrics(run / "metrics.jsonl") if "loss" in m]
    logged = [e.value for e in events.Scalars("train/loss")]
    assert logged == pytest.approx(losses, rel=1e-5)
    assert torch.is_tensor(load_checkpoint(run)[0]["rng"]["torch"])


@pytest.mark.slow
def test_the_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The notebook example in README.md, exactly as printed there."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Python (notebooks)", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    run, episode = namespace["run"], namespace["episode"]
    assert (tmp_path / run / "videos" / "notebook.mp4").stat().st_size > 0
    assert len(episode.screens) == episode.frames > 0
    assert episode.screens[0].shape == (240, 256, 3)


# ------------------------------------------------------------- an algorithm from outside


@dataclasses.dataclass
class TinySettings:
    """A third algorithm's section: two keys of its own and one it shares (``lr``)."""

    lr: float = setting(0.5, "step size")
    tiny_width: int = setting(8, "pooled frame side the linear policy sees")
    tiny_greed: float = setting(0.9, "probability of the best action while training")

    def validate(self, num_envs: int, stack: int) -> None:
        at_least(self, 1, "tiny_width")
        within(self, 0.0, 1.0, "tiny_greed")


class TinyNet(torch.nn.Module):
    """Average-pooled frames into a linear layer: action logits."""

    def __init__(self, n_actions: int, stack: int, width: int) -> None:
        super().__init__()
        self.n_actions, self.in_channels, self.width = n_actions, stack, width
        self.linear = torch.nn.Linear(stack * width * width, n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.adaptive_avg_pool2d(obs.float() / 255.0, self.width)
        return self.linear(x.flatten(1))


class TinyPolicy:
    def __init__(self, net: TinyNet, seed: int) -> None:
        self.net, self.n_actions = net, net.n_actions
        self.rng = np.random.default_rng(seed)

    @torch.no_grad()
    def act(self, obs: np.ndarray, *, explore: float = 0.0) -> tuple[np.ndarray, list[Any]]:
        logits = self.net(torch.from_numpy(np.ascontiguousarray(obs)))
        actions = logits.argmax(1).numpy()
        randomly = self.rng.random(len(obs)) < explore
        actions[randomly] = self.rng.integers(self.n_actions, size=int(randomly.sum()))
        return actions, [ActionValues("π", row) for row in logits.softmax(1).tolist()]


class Tiny:
    """Reward-weighted regression in one line: after each step, move the logits of the
    action taken towards ``reward`` (a toy, but a real learner: weights change, Adam's state
    and the update count go into checkpoints)."""

    name = "tiny"

    def __init__(self, settings: TinySettings, ctx: Context) -> None:
        self.settings = settings
        self.net = TinyNet(ctx.n_actions, ctx.stack, settings.tiny_width).to(ctx.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=settings.lr * 1e-2)
        self._policy = TinyPolicy(self.net, ctx.seed)
        self._updates, self._losses = 0, []

    def act(self, obs: np.ndarray, step: int, explore_floor: Any = None) -> np.ndarray:
        return self._policy.act(obs, explore=1.0 - self.settings.tiny_greed)[0]

    def observe(self, t: Any, step: int) -> None:
        logits = self.net(torch.from_numpy(t.obs))
        taken = logits.gather(1, torch.from_numpy(t.action)[:, None]).squeeze(1)
        loss = ((taken - torch.from_numpy(t.reward).float()) ** 2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self._updates += 1
        self._losses.append(float(loss.detach()))

    def learn(self, step: int) -> None:
        return None  # it learns as it observes

    def stats(self) -> dict[str, float]:
        losses, self._losses = self._losses, []
        return {"loss": float(np.mean(losses))} if losses else {}

    @property
    def updates(self) -> int:
        return self._updates

    def status(self, step: int) -> dict[str, float]:
        return {}

    def policy(self) -> TinyPolicy:
        return self._policy

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self._updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._updates = int(state["updates"])

    def replay_writer(self) -> None:
        return None

    def load_replay(self, folder: Any) -> None:
        return None


def _tiny_policy(settings: TinySettings, weights: dict[str, Any], ctx: Context) -> TinyPolicy:
    net = TinyNet(ctx.n_actions, ctx.stack, settings.tiny_width)
    net.load_state_dict({k: v.float() for k, v in weights.items()})
    return TinyPolicy(net.to(ctx.device).eval(), ctx.seed)


TINY = AlgorithmSpec(
    name="tiny",
    title="a test's own algorithm",
    settings=TinySettings,
    make=Tiny,
    load_policy=_tiny_policy,
    acting_weights=lambda net: {k: v.detach().cpu() for k, v in net.state_dict().items()},
    actor=lambda settings, ctx, first, total: None,  # type: ignore[arg-type,return-value]
    network=lambda settings, ctx: TinyNet(ctx.n_actions, ctx.stack, settings.tiny_width),
    buffer_bytes=lambda settings, ctx: (0, 0),
    buffer_option="tiny_width",
    saves_buffer=lambda settings: False,
    rollout_steps=lambda settings: None,
)


@pytest.fixture
def tiny() -> Iterator[AlgorithmSpec]:
    algos.register(TINY)
    yield TINY
    algos.unregister("tiny")


@pytest.mark.slow
def test_an_algorithm_registered_from_outside_trains_resumes_evaluates_and_replays(
    tiny: AlgorithmSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The seam: this file defines and registers an algorithm; `mario train --algo tiny`
    (with its own option), `--resume`, `mario eval` and `mario replay` run it, nothing in
    mario/ names it."""
    run = tmp_path / "run"
    common = ["--num-envs", "1", "--max-episode-steps", "30", "--wandb-mode", "disabled"]
    first = ["--algo", "tiny", "--tiny-width", "6", "--total-steps", "40", "--run-dir", str(run)]
    assert cli.main(["train", *first, "--checkpoint-every", "20", *common]) == 0
    assert [c.step for c in list_checkpoints(run)] == [20, 40]
    state, _, _ = load_checkpoint(run)
    assert state["algo"] == "tiny" and state["counters"]["updates"] == 40
    assert state["config"]["tiny_width"] == 6 and state["net_signature"]["kind"] == "TinyNet"

    assert cli.main(["train", "--resume", str(run), "--total-steps", "60", *common]) == 0
    resumed, _, _ = load_checkpoint(run)
    assert resumed["counters"]["step"] == 60 and resumed["counters"]["updates"] == 60
    assert cli.build_parser().parse_args(["train", "--tiny-greed", "0.3"]).tiny_greed == "0.3"

    capsys.readouterr()
    assert cli.main(["eval", str(run), "--episodes", "2", "--max-steps", "20", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["algo"] == "tiny" and report["step"] == 60
    assert report["stages"]["1-1"]["episodes"] == 2

    out = tmp_path / "tiny.mp4"
    assert cli.main(["replay", str(run), "--max-steps", "15", "--out", str(out)]) == 0
    frames, info = decode_video(out)
    assert info["codec"] == "h264" and len(frames) == int(capsys.readouterr().out.split()[-1])


def test_a_registered_algorithm_keeps_its_keys_apart(tiny: AlgorithmSpec) -> None:
    """Its keys are config keys; another algorithm's key is refused naming its owner."""
    assert build_config({"algo": "tiny", "tiny_greed": 0.5}).algorithm.tiny_greed == 0.5
    with pytest.raises(ConfigError, match="tiny_width is a TINY option"):
        build_config({"tiny_width": 4})
    with pytest.raises(ConfigError, match="replay_size is a DQN option"):
        build_config({"algo": "tiny", "replay_size": 1000})
    with pytest.raises(ValueError, match="already registered"):
        algos.register(dataclasses.replace(TINY, title="another"))
