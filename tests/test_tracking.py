"""Tests of mario.storage (tracker, metrics, plots, wandb_setup) with real W&B in offline mode
(no network, no real keys)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import av
import matplotlib.image
import numpy as np
import pytest

from mario.storage.metrics import read_metrics
from mario.storage.plots import plot_metrics
from mario.storage.tracker import Tracker
from mario.storage.wandb_setup import WandbConfigError, resolve_wandb_mode

SECRET = "sk-test-0123456789abcdef-not-a-real-key"  # also too short for W&B to accept
FAKE_KEY = "0123456789abcdef0123456789abcdef0123fake"  # W&B's format (40 chars); not a key
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME and W&B folders, no key anywhere, and a secret that must never leak."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in (
        "WANDB_API_KEY",
        "WANDB_IDENTITY_TOKEN_FILE",
        "WANDB_MODE",
        "WANDB_BASE_URL",
        "WANDB_INIT_TIMEOUT",
        "NETRC",
        "WANDB_RUN_ID",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")  # wandb-core: no telemetry upload
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(home / ".config" / "wandb"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(home / ".cache" / "wandb"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(home / ".local" / "wandb"))
    monkeypatch.setenv("MARIO_TEST_SECRET", SECRET)
    return home


def _offline_dirs(run_dir: Path, run_id: str) -> list[Path]:
    return sorted((run_dir / "wandb").glob(f"offline-run-*-{run_id}"))


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def test_offline_run_logs_and_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = {"lr": 0.00025, "stage": "1-1", "batch_size": 32}

    t0 = time.perf_counter()
    tracker = Tracker(run_dir, config, wandb_mode="offline")
    init_s = time.perf_counter() - t0
    run_id = tracker.run_id
    for step in (100, 200):
        tracker.log(step, {"loss": 0.5, "epsilon": 0.9, "done": False, "note": "ok"})
    tracker.log(250, {"return": 12.0, "x_pos": 300}, kind="episode")
    assert tracker.wandb_run_dir is not None
    tracker.close()
    tracker.close()  # idempotent

    print(f"wandb offline init took {init_s:.2f} s")
    assert init_s < 30, f"wandb offline init took {init_s:.1f} s"
    (first,) = _offline_dirs(run_dir, run_id)
    wandb_file = first / f"run-{run_id}.wandb"
    assert wandb_file.stat().st_size > 0
    data = wandb_file.read_bytes()
    for text in (b"train/loss", b"episode/x_pos", b"agent_step", b"batch_size"):
        assert text in data

    # A second process resumes the same W&B run id. W&B names offline run folders by the
    # second they start in: start the resumed run in a later second than the first one.
    time.sleep(1.0 - time.time() % 1.0 + 0.05)
    resumed = Tracker(run_dir, config, wandb_mode="offline", run_id=run_id)
    resumed.log(300, {"loss": 0.25})
    resumed.close()
    dirs = _offline_dirs(run_dir, run_id)
    assert len(dirs) == 2
    data = (dirs[1] / f"run-{run_id}.wandb").read_bytes()
    assert run_id.encode() in data and b"train/loss" in data

    records = read_metrics(run_dir / "metrics.jsonl")
    assert [r["kind"] for r in records] == [
        "session",
        "train",
        "train",
        "episode",
        "session",
        "train",
    ]
    assert [r["step"] for r in records if r["kind"] == "train"] == [100, 200, 300]
    assert records[1] == {**records[1], "loss": 0.5, "done": False, "note": "ok"}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        assert isinstance(json.loads(line)["step"], int)

    assert SECRET.encode() not in _all_bytes(run_dir)


def test_disabled_mode_writes_metrics_only(tmp_path: Path) -> None:
    with Tracker(tmp_path, {"a": 1}, wandb_mode="disabled", run_id="myrun-1") as tracker:
        tracker.log(1, {"loss": np.float32(0.5), "count": np.int64(3)})
        assert tracker.wandb_run_dir is None
    assert not (tmp_path / "wandb").exists()
    (_, record) = read_metrics(tmp_path / "metrics.jsonl")
    assert (record["loss"], record["count"]) == (0.5, 3)


def test_start_step_marks_the_resumed_session(tmp_path: Path) -> None:
    with Tracker(tmp_path, {}, wandb_mode="disabled") as tracker:
        for step in (100, 200, 300):
            tracker.log(step, {"loss": 1.0})
    with Tracker(tmp_path, {}, wandb_mode="disabled", start_step=150) as tracker:
        tracker.log(250, {"loss": 2.0})
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [(r["step"], r["kind"]) for r in records][-2:] == [(150, "session"), (250, "train")]
    from mario.storage.metrics import drop_rewound

    kept = [(r["step"], r.get("loss")) for r in drop_rewound(records) if r["kind"] == "train"]
    assert kept == [(100, 1.0), (250, 2.0)]


def test_log_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not one of online, offline, disabled"):
        Tracker(tmp_path, {}, wandb_mode="auto")
    with pytest.raises(ValueError, match="run_id"):
        Tracker(tmp_path, {}, wandb_mode="disabled", run_id="a/b")
    with Tracker(tmp_path, {}, wandb_mode="disabled") as tracker:
        with pytest.raises(ValueError, match="reserved"):
            tracker.log(1, {"step": 3})
        with pytest.raises(TypeError, match="'obs'"):
            tracker.log(1, {"obs": np.zeros(3)})
        with pytest.raises(TypeError, match="step must be an int"):
            tracker.log(1.5, {"loss": 1.0})  # type: ignore[arg-type]


def test_read_metrics_survives_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    with Tracker(tmp_path, {}, wandb_mode="disabled") as tracker:
        for step in range(1, 4):
            tracker.log(step, {"loss": 1.0 / step})
    with open(path, "a") as f:
        f.write('{"step": 4, "kind": "train", "lo')  # a kill -9 in mid-write
    assert [r["step"] for r in read_metrics(path) if r["kind"] == "train"] == [1, 2, 3]

    # The next tracker cuts the partial line before appending.
    with Tracker(tmp_path, {}, wandb_mode="disabled") as tracker:
        tracker.log(4, {"loss": 0.25})
    lines = path.read_text().splitlines()
    assert all(json.loads(line) for line in lines)
    assert [r["step"] for r in read_metrics(path) if r["kind"] == "train"] == [1, 2, 3, 4]

    path.write_text('{"step": 1, "kind": "train"}\nnot json\n{"step": 2, "kind": "train"}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2"):
        read_metrics(path)
    assert read_metrics(tmp_path / "missing.jsonl") == []


def test_plot_writes_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with Tracker(tmp_path, {}, wandb_mode="disabled") as tracker:
        for i in range(1, 301):
            step = i * 500
            tracker.log(step, {"loss": float(rng.random()), "epsilon": max(0.1, 1 - i / 200)})
            if i % 3 == 0:
                x = float(rng.integers(40, 3000))
                tracker.log(step, {"return": x / 10, "x_pos": x}, kind="episode")
            if i % 50 == 0:
                tracker.log(step, {"x_pos_mean": 800.0, "flag_rate": 0.2}, kind="eval")
        out = tracker.plot()
    assert out == tmp_path / "curves.png"
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(out)
    assert image.shape[0] > 400 and image.shape[1] > 800
    assert image.std() > 0.05  # something was drawn
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    from mario.storage.plots import _PANELS, _series

    records = read_metrics(tmp_path / "metrics.jsonl")
    for title, kind, keys, _ in _PANELS:  # every panel found its data
        assert len(_series(records, kind, keys)[0]) >= 6, title

    # An empty log still gives a valid picture ("nothing logged yet").
    empty = plot_metrics([], tmp_path / "empty.png")
    assert empty.read_bytes()[:8] == PNG_SIGNATURE


def test_a_short_run_shows_only_what_it_has() -> None:
    from mario.storage.plots import draw_metrics

    records = [
        {"step": 100 * i, "kind": "episode", "return": 5.0 * i, "x_pos": 300 + i}
        for i in range(1, 4)
    ] + [{"step": 300, "kind": "train", "loss": 0.5, "epsilon": 0.9}]
    fig = draw_metrics(records)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["episode return", "episode x_pos", "loss", "epsilon"]  # no eval panels
    legends = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().texts]
    assert legends == []  # 3 episodes: no "mean of last 1" beside the points
    many = [{"step": i, "kind": "episode", "return": float(i), "x_pos": i} for i in range(50)]
    legends = [t.get_text() for ax in draw_metrics(many).axes for t in ax.get_legend().texts]
    assert legends == ["return", "mean of last 5", "x_pos", "mean of last 5"]


def test_plot_keeps_only_the_resumed_history() -> None:
    from mario.storage.metrics import drop_rewound

    records = [
        {"step": 0, "kind": "session"},
        {"step": 100, "kind": "train", "loss": 1.0},
        {"step": 90, "kind": "episode", "x_pos": 1},  # a little out of order: kept
        {"step": 200, "kind": "train", "loss": 2.0},  # lost with the killed segment
        {"step": 150, "kind": "session"},  # resumed from the checkpoint at 150
        {"step": 160, "kind": "train", "loss": 3.0},
    ]
    kept = drop_rewound(records)
    assert [(r["step"], r["kind"]) for r in kept] == [
        (0, "session"),
        (100, "train"),
        (90, "episode"),
        (150, "session"),
        (160, "train"),
    ]


def _make_mp4(path: Path, frames: int = 16) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            rgb = np.zeros((48, 64, 3), dtype=np.uint8)
            rgb[:, : 4 * (i + 1)] = (200, 30, 30)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_log_video_lands_in_offline_run_files(tmp_path: Path) -> None:
    video = tmp_path / "episode.mp4"
    _make_mp4(video)
    run_dir = tmp_path / "run"
    tracker = Tracker(run_dir, {}, wandb_mode="offline")
    tracker.log_video(1000, video)
    with pytest.raises(ValueError, match=r"suffix '\.avi'"):
        tracker.log_video(1000, tmp_path / "x.avi")
    tracker.close()

    (offline,) = _offline_dirs(run_dir, tracker.run_id)
    logged = list((offline / "files" / "media").rglob("*.mp4"))
    assert len(logged) == 1
    assert logged[0].read_bytes() == video.read_bytes()
    with av.open(str(logged[0])) as container:
        assert sum(1 for _ in container.decode(video=0)) == 16
    (record,) = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "video"]
    assert (record["step"], record["eval/video"]) == (1000, str(video))


def test_resolve_wandb_mode(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mode, message = resolve_wandb_mode("auto", Path("/runs/r1"))
    assert mode == "offline"
    assert message is not None and "\n" not in message
    assert "wandb sync /runs/r1/wandb/offline-run-*" in message

    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    assert resolve_wandb_mode("auto") == ("online", None)
    assert resolve_wandb_mode("online") == ("online", None)
    mode, message = resolve_wandb_mode("offline")
    assert mode == "offline" and message is not None and FAKE_KEY not in message
    assert resolve_wandb_mode("disabled") == ("disabled", None)
    monkeypatch.delenv("WANDB_API_KEY")

    # A netrc key for api.wandb.ai (older `wandb login`) still counts for W&B's cloud.
    netrc = isolated_env / ".netrc"
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {FAKE_KEY}\n")
    netrc.chmod(0o600)
    assert resolve_wandb_mode("auto") == ("online", None)
    netrc.write_text(f"machine example.com\n  login user\n  password {FAKE_KEY}\n")
    assert resolve_wandb_mode("auto")[0] == "offline"

    monkeypatch.setenv("WANDB_MODE", "disabled")
    mode, message = resolve_wandb_mode("auto")
    assert mode == "disabled" and message is not None and "WANDB_MODE" in message
    with pytest.raises(WandbConfigError):  # an explicit online still needs a key
        resolve_wandb_mode("online")

    with pytest.raises(ValueError, match="'cloud' is not one of auto, online, offline"):
        resolve_wandb_mode("cloud")


def test_online_without_a_key_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb  # noqa: F401  (importing wandb is not what is timed)

    run_dir = tmp_path / "run"
    t0 = time.perf_counter()
    with pytest.raises(WandbConfigError) as info:
        resolve_wandb_mode("online", run_dir)
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0, f"took {elapsed:.2f} s"
    message = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in message
    for text in ("no W&B API key", "`wandb login`", "WANDB_API_KEY", "--wandb-mode offline"):
        assert text in message
    assert "disabled" in message
    assert not run_dir.exists()

    # A key W&B would refuse (wrong format) fails the same way, without showing the key;
    # auto logs offline and says why.
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    with pytest.raises(WandbConfigError, match="API key in WANDB_API_KEY is not valid") as info:
        resolve_wandb_mode("online")
    assert SECRET not in str(info.value)
    mode, message = resolve_wandb_mode("auto")
    assert mode == "offline" and message is not None
    assert "not valid" in message and SECRET not in message


def _closed_port() -> int:
    """A local TCP port nothing listens on (so W&B is unreachable there, and offline)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_auto_finds_the_key_wandb_login_writes(
    isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wandb.sdk.lib import urls, wbauth

    # `wandb login KEY` for W&B's default server writes the key under that server's host,
    # which is no longer api.wandb.ai (wandb's own function; no network).
    wbauth.write_netrc_auth(host=urls.DEFAULT_BASE_URL, api_key=FAKE_KEY)
    assert resolve_wandb_mode("auto") == ("online", None)
    monkeypatch.setenv("NETRC", str(tmp_path / "other-netrc"))  # wandb reads $NETRC instead
    assert resolve_wandb_mode("auto")[0] == "offline"
    monkeypatch.delenv("NETRC")
    (isolated_env / ".netrc").unlink()

    # The real CLI for a self-hosted server: the key goes under host:port and the server into
    # W&B's settings file, with no WANDB_BASE_URL set afterwards.
    server = f"http://127.0.0.1:{_closed_port()}"
    login = subprocess.run(
        [sys.executable, "-m", "wandb", "login", "--no-verify", "--host", server, FAKE_KEY],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert login.returncode == 0, login.stderr
    assert resolve_wandb_mode("auto") == ("online", None)

    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.com")  # no key for this one
    mode, message = resolve_wandb_mode("auto", tmp_path)
    assert mode == "offline" and message is not None
    assert "no W&B API key for https://wandb.example.com" in message and FAKE_KEY not in message


def test_unreachable_server_falls_back_to_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{_closed_port()}")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_X_DISABLE_STATS", "true")  # no cloud-metadata probes either
    monkeypatch.setenv("WANDB_X_DISABLE_MACHINE_INFO", "true")
    assert resolve_wandb_mode("auto") == ("online", None)  # a key: W&B would go online

    run_dir = tmp_path / "my run"
    timeout = 3.0
    t0 = time.perf_counter()
    tracker = Tracker(run_dir, {"lr": 0.5}, wandb_mode="online", init_timeout=timeout)
    elapsed = time.perf_counter() - t0
    print(f"online init failed over to offline in {elapsed:.1f} s")
    assert elapsed < timeout + 15, f"took {elapsed:.1f} s"
    assert tracker.wandb_mode == "offline"
    offline = tracker.wandb_run_dir
    assert offline is not None and offline.name.startswith("offline-run-")
    assert offline.parent == run_dir / "wandb" and offline.name.endswith(tracker.run_id)
    (note,) = tracker.notes
    assert "\n" not in note and "unreachable" in note and FAKE_KEY not in note
    assert f"`wandb sync {shlex.quote(str(offline))}`" in note
    tracker.log(10, {"loss": 0.5})
    tracker.close()

    (folder,) = _offline_dirs(run_dir, tracker.run_id)
    data = (folder / f"run-{tracker.run_id}.wandb").read_bytes()
    assert b"train/loss" in data and b"agent_step" in data
    assert [r["kind"] for r in read_metrics(run_dir / "metrics.jsonl")] == ["session", "train"]
    assert FAKE_KEY.encode() not in _all_bytes(run_dir)


def test_sync_hint_quotes_a_run_dir_with_spaces(tmp_path: Path) -> None:
    run_dir = tmp_path / "my runs" / "run 1"
    offline = run_dir / "wandb" / "offline-run-20260101_000000-abc123"
    offline.mkdir(parents=True)
    _, message = resolve_wandb_mode("offline", run_dir)
    assert message is not None
    match = re.search(r"`wandb sync ([^`]+)`", message)
    assert match is not None
    # The shell sees one argument per offline folder: the quoted path plus the expanded glob.
    shell = subprocess.run(
        ["sh", "-c", f"printf '%s\\n' {match.group(1)}"], capture_output=True, text=True
    )
    assert shell.stdout.splitlines() == [str(offline)]


_STOPPED_EARLY = """
import os, signal, sys
from pathlib import Path

import numpy as np

from mario.storage.tracker import Tracker

from mario.storage.wandb_setup import resolve_wandb_mode

run_dir, stage = Path(sys.argv[1]), sys.argv[2]
mode, _ = resolve_wandb_mode("auto", run_dir)  # imports wandb; no key: offline
if stage == "closed":
    tracker = Tracker(run_dir, {}, wandb_mode=mode)
    import wandb

    wandb.Image(np.zeros((8, 8, 3), dtype=np.uint8))  # wandb stages media while a run is open
    tracker.log(1, {"loss": 1.0})
    tracker.close()
print("stopping", flush=True)
os.kill(os.getpid(), signal.SIGTERM)  # no handler: no atexit hooks, as in an early stop
"""


@pytest.mark.parametrize("stage", ["resolved", "closed"])
def test_a_stopped_process_leaves_no_wandb_temp_dirs(tmp_path: Path, stage: str) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", _STOPPED_EARLY, str(tmp_path / "run"), stage],
        env={**os.environ, "TMPDIR": str(tmp)},  # wandb makes its folders via tempfile
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert proc.stdout.strip() == "stopping"
    assert sorted(p.name for p in tmp.iterdir()) == []


def test_the_curves_never_stop_a_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A damaged line in metrics.jsonl (it crashed every later checkpoint) is left out of the
    plot; a failure to draw at all is one warning line, once, and never an exception."""
    import mario.storage.tracker

    with Tracker(tmp_path, {}, wandb_mode="disabled") as tracker:
        tracker.log(100, {"return": 1.0, "x_pos": 50}, kind="episode")
        with open(tmp_path / "metrics.jsonl", "a") as f:
            f.write("this is not JSON\n[1, 2]\n")
        tracker.log(200, {"return": 2.0, "x_pos": 80}, kind="episode")
        assert tracker.plot() == tmp_path / "curves.png"
        assert matplotlib.image.imread(tmp_path / "curves.png").shape[0] > 100
        with pytest.raises(ValueError, match=r"metrics.jsonl:\d+: not a JSON line"):
            read_metrics(tmp_path / "metrics.jsonl")  # strict where asked

        def broken(*args: object, **kwargs: object) -> Path:
            raise RuntimeError("no canvas")

        monkeypatch.setattr(mario.storage.tracker, "plot_metrics", broken)
        assert tracker.plot() is None and tracker.plot() is None
    err = capsys.readouterr().err
    assert err.count("warning: could not draw") == 1 and "RuntimeError: no canvas" in err
