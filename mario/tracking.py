"""Run tracking: ``metrics.jsonl`` (always), Weights & Biases (optional), learning-curve PNGs.

``metrics.jsonl`` is the source of truth: one JSON object per line with ``step`` (agent
steps), ``kind`` and ``time`` plus the metrics. The plots are drawn from it, so they work
with W&B disabled. Names the plots look for (``kind``: keys):

* ``episode`` (one line per finished training episode): ``return``, ``x_pos``
* ``train`` (periodic learner stats): ``loss``, ``epsilon``
* ``eval`` (greedy evaluation): ``x_pos_mean`` (or ``x_pos``), ``flag_rate``

In W&B every metric is logged as ``<kind>/<key>`` against the custom step metric
``agent_step``, so charts never go back in time after a resume (W&B's own step counter
keeps increasing; ours is a value).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shlex
import string
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "WANDB_INIT_TIMEOUT_S",
    "WANDB_MODES",
    "Tracker",
    "WandbConfigError",
    "plot_metrics",
    "read_metrics",
    "resolve_wandb_mode",
]

WANDB_MODES = ("auto", "online", "offline", "disabled")
METRICS = "metrics.jsonl"
CURVES = "curves.png"
_RESERVED = ("step", "kind", "time")
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_VIDEO_FORMATS = {".mp4": "mp4", ".gif": "gif", ".webm": "webm", ".ogg": "ogg"}


#: Default bound on ``wandb.init`` in online mode, in seconds (W&B's own default is 90 and
#: it retries for longer); ``$WANDB_INIT_TIMEOUT`` or ``Tracker(init_timeout=...)`` change it.
WANDB_INIT_TIMEOUT_S = 30.0


class WandbConfigError(ValueError):
    """W&B cannot log online as configured (no API key, or one W&B would reject).

    The message is one line: what is wrong and how to fix it.
    """


def _sync_hint(run_dir: Path | None) -> str:
    # The folder is quoted for the shell; the glob stays outside the quotes so it expands.
    folder = shlex.quote(str(run_dir / "wandb")) if run_dir is not None else "RUN_DIR/wandb"
    return f"upload later with `wandb sync {folder}/offline-run-*`"


def _one_line(error: BaseException, limit: int = 240) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ``import wandb`` creates two empty folders, /tmp/tmp*wandb-media and
# /tmp/tmp*wandb-artifacts, that only an atexit hook removes: a process killed by a signal
# (say SIGTERM while wandb.init waits, before the trainer's own handler is installed) leaves
# them behind. So they exist only while this process has a W&B run open (wandb stages media
# there): removed right after the import and when the last Tracker closes.
_open_runs = 0


def _wandb_staging_dirs() -> list[tempfile.TemporaryDirectory[str]]:
    from wandb.sdk.artifacts.artifact import Artifact
    from wandb.sdk.data_types import _private

    found = (getattr(_private, "MEDIA_TMP", None), getattr(Artifact, "_TMP_DIR", None))
    return [d for d in found if isinstance(d, tempfile.TemporaryDirectory)]


def _sync_staging_dirs(change: int = 0) -> None:
    """Count runs opened (+1) or closed (-1); make wandb's staging folders exist iff one is."""
    global _open_runs
    _open_runs += change
    for folder in _wandb_staging_dirs():
        if _open_runs > 0:
            os.makedirs(folder.name, mode=0o700, exist_ok=True)
        else:
            folder.cleanup()  # also detaches its exit-time finalizer; safe to repeat


def _wandb_key_problem() -> str | None:
    """What keeps ``wandb.init`` from logging online: None when W&B has an API key (or an
    identity token file) for the server it would use, else a short phrase.

    Follows wandb's own lookup (``wbauth.authenticate_session`` minus its prompt):
    ``$WANDB_API_KEY``, ``$WANDB_IDENTITY_TOKEN_FILE``, the netrc file (``$NETRC`` or
    ``~/.netrc``, where ``wandb login`` writes the key under the server's host[:port]),
    then the W&B settings files. The server is ``$WANDB_BASE_URL``, else the one
    ``wandb login --host`` saved in the settings file, else W&B's default (which is no
    longer api.wandb.ai). Local files only: no prompt, no network.

    The settings are loaded into a fresh ``wandb.Settings`` the way wandb loads its global
    ones, not through wandb's process-wide singleton: that would keep these values (and a
    thread) for the rest of the process, including for a Tracker made after an
    environment change.
    """
    from wandb import env
    from wandb.errors import AuthenticationError
    from wandb.sdk.lib import wbauth
    from wandb.sdk.wandb_settings import Settings

    _sync_staging_dirs()
    try:
        settings = Settings()
        config_dir = os.environ.get(env.CONFIG_DIR)
        system = Path(config_dir).expanduser() if config_dir else Path.home() / ".config/wandb"
        settings.settings_system = str(system / "settings")
        settings.update_from_system_settings()
        settings.update_from_env_vars(dict(os.environ))
        host = wbauth.HostUrl(settings.base_url, app_url=settings.app_url)
    except ValueError as e:  # pydantic's ValidationError is a ValueError too
        return f"the W&B settings are invalid: {_one_line(e)}"
    api_key = os.environ.get(env.API_KEY)
    if api_key and os.environ.get(env.IDENTITY_TOKEN_FILE):
        return f"both {env.API_KEY} and {env.IDENTITY_TOKEN_FILE} are set"
    if os.environ.get(env.IDENTITY_TOKEN_FILE):
        return None
    source = env.API_KEY
    if not api_key:
        try:
            api_key = wbauth.read_netrc_auth(host=host)
        except AuthenticationError as e:
            return f"the W&B API key in the netrc file is not valid ({e})"
        source = "the netrc file"
    if not api_key and settings.api_key:
        api_key, source = settings.api_key, "the W&B settings"
    if not api_key:
        return f"no W&B API key for {host.url} in {env.API_KEY}, the netrc file or the W&B settings"
    problem = wbauth.check_api_key(api_key)
    if problem:
        return f"the W&B API key in {source} is not valid ({problem})"
    return None


def check_tensorboard() -> None:
    """ValueError saying how to install TensorBoard if its writer cannot be imported."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ValueError(
            "tensorboard logging needs the tensorboard package: "
            'pip install "mario[tensorboard]" (or leave out --tensorboard)'
        ) from None


def resolve_wandb_mode(requested: str, run_dir: Path | None = None) -> tuple[str, str | None]:
    """Turn a requested W&B mode into the one to use, with a one-line note for the user.

    ``auto``: ``$WANDB_MODE`` if set, else online when W&B has an API key for its server
    (see :func:`_wandb_key_problem`), else offline. Offline comes with a message that says
    how to upload the run later. ``online`` without a usable key raises
    :class:`WandbConfigError` (W&B itself would fail only after seconds, with a traceback).
    Reads local settings only: it never prompts or touches the network.
    """
    if requested not in WANDB_MODES:
        raise ValueError(f"wandb mode {requested!r} is not one of {', '.join(WANDB_MODES)}")
    mode = requested
    reason = ""
    if requested == "auto":
        env_mode = os.environ.get("WANDB_MODE", "").strip().lower()
        env_mode = "offline" if env_mode == "dryrun" else env_mode
        if env_mode in ("online", "offline", "disabled"):
            mode, reason = env_mode, " (from WANDB_MODE)"
        else:
            problem = _wandb_key_problem()
            mode, reason = ("online", "") if problem is None else ("offline", f" ({problem})")
    elif requested == "online":
        problem = _wandb_key_problem()
        if problem is not None:
            raise WandbConfigError(
                f"--wandb-mode online: {problem}; run `wandb login`, set WANDB_API_KEY, "
                "or use --wandb-mode offline (upload later with `wandb sync`) or --wandb-mode "
                "disabled"
            )
    if mode == "offline":
        return mode, f"W&B is offline{reason}; {_sync_hint(run_dir)}"
    if mode == "disabled" and requested == "auto":
        return mode, f"W&B is disabled{reason}; metrics go to {METRICS} only"
    return mode, None


def _new_run_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def _plain(key: str, value: Any) -> float | int | bool | str:
    if isinstance(value, (bool, int, float, str)):
        return value
    item = getattr(value, "item", None)  # NumPy scalars, 0-d arrays and tensors
    if callable(item):
        try:
            plain = item()
        except (ValueError, RuntimeError):
            plain = None
        if isinstance(plain, (bool, int, float)):
            return plain
    raise TypeError(
        f"metric {key!r} has type {type(value).__name__}; valid: float, int, bool, str "
        "(or a one-element NumPy/torch value)"
    )


class Tracker:
    """Logs metrics to ``RUN/metrics.jsonl``, (unless disabled) to W&B, and optionally to
    TensorBoard event files in ``RUN/tensorboard`` (``tensorboard --logdir RUN``).

    ``wandb_mode`` is "online", "offline" or "disabled" (resolve "auto" first with
    :func:`resolve_wandb_mode`). Passing the ``run_id`` of an earlier run resumes it in W&B.
    Only ``config`` is sent as the run's config; the environment is never logged.
    ``start_step`` (the step of the checkpoint a resumed run starts from) marks the start
    of this process's history in metrics.jsonl; without it the first logged step does.

    Online, ``wandb.init`` may wait ``init_timeout`` seconds (default ``$WANDB_INIT_TIMEOUT``,
    else :data:`WANDB_INIT_TIMEOUT_S`); if it fails for any reason (server unreachable, key
    refused) the run logs offline instead, in the same folder with the same run id, and
    ``notes`` gets a line saying so, with the ``wandb sync`` command that uploads it.
    ``wandb_mode`` is then "offline". Print ``notes`` after construction.
    """

    def __init__(
        self,
        run_dir: Path,
        config: dict[str, Any],
        *,
        wandb_mode: str,
        run_id: str | None = None,
        project: str = "mario",
        run_name: str | None = None,
        start_step: int | None = None,
        init_timeout: float | None = None,
        tensorboard: bool = False,
    ) -> None:
        if wandb_mode not in ("online", "offline", "disabled"):
            raise ValueError(
                f"wandb_mode {wandb_mode!r} is not one of online, offline, disabled "
                "(resolve 'auto' with resolve_wandb_mode first)"
            )
        if run_id is not None and not _RUN_ID.fullmatch(run_id):
            raise ValueError(
                f"run_id {run_id!r} is not valid: use 1-64 letters, digits, '_' or '-'"
            )
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.wandb_mode = wandb_mode
        self.notes: list[str] = []
        self._plot_failures: set[str] = set()
        self._tb: Any = None
        if tensorboard:
            check_tensorboard()
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
        self.metrics_path = self.run_dir / METRICS
        _drop_partial_last_line(self.metrics_path)
        self._file = open(self.metrics_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._run: Any = None
        self._session_logged = False
        self.run_id = run_id or _new_run_id()
        if start_step is not None:
            self._mark_session(start_step)
        if wandb_mode == "disabled":
            return
        import wandb  # slow import; not needed when disabled

        _sync_staging_dirs()

        def init(mode: Any, **settings: Any) -> Any:
            return wandb.init(
                dir=self.run_dir,
                id=self.run_id,
                resume="allow",
                mode=mode,
                config=config,
                project=project,
                name=run_name,
                save_code=False,
                reinit="create_new",
                # our own line says where the run is and how to sync it; W&B's banner and
                # end-of-run summary would repeat it in every log (docker logs included)
                settings=wandb.Settings(quiet=True, **settings),
            )

        (self.run_dir / "wandb").mkdir(exist_ok=True)
        try:
            if wandb_mode == "online":
                if init_timeout is None and not os.environ.get("WANDB_INIT_TIMEOUT"):
                    init_timeout = WANDB_INIT_TIMEOUT_S
                timeout = {} if init_timeout is None else {"init_timeout": init_timeout}
                try:
                    self._run = init("online", **timeout)
                except Exception as e:
                    # The failed start may leave wandb's service half set up for this run:
                    # tear it down so the offline run starts clean.
                    wandb.teardown()
                    self._run = init("offline")
                    self.wandb_mode = "offline"
                    sync = shlex.quote(str(Path(self._run.dir).parent.absolute()))
                    self.notes.append(
                        f"W&B was unreachable ({type(e).__name__}: {_one_line(e)}); logging "
                        f"offline instead, upload later with `wandb sync {sync}`"
                    )
            else:
                self._run = init(wandb_mode)
        except BaseException:
            self._file.close()
            _sync_staging_dirs()
            raise
        _sync_staging_dirs(+1)
        self._run.define_metric("agent_step")
        self._run.define_metric("*", step_metric="agent_step")

    @property
    def wandb_run_dir(self) -> Path | None:
        """The W&B run's local folder (``RUN/wandb/<offline-run|run>-<time>-<id>``), if any."""
        return Path(self._run.dir).parent if self._run is not None else None

    def log(
        self, step: int, metrics: dict[str, float | int | bool | str], *, kind: str = "train"
    ) -> None:
        """Append one line to metrics.jsonl and log ``<kind>/<key>`` to W&B at ``agent_step``."""
        if isinstance(step, bool) or not isinstance(step, int):
            raise TypeError(f"step must be an int, got {step!r}")
        clash = [k for k in metrics if k in _RESERVED]
        if clash:
            raise ValueError(f"metric names {clash} are reserved ({', '.join(_RESERVED)})")
        values = {k: _plain(k, v) for k, v in metrics.items()}
        now = round(time.time(), 3)
        if not self._session_logged:
            self._mark_session(step)
        self._write({"step": step, "kind": kind, "time": now, **values})
        if self._tb is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(f"{kind}/{key}", value, step)
        if self._run is not None:
            prefix = f"{kind}/"
            data: dict[str, Any] = {
                (k if k.startswith(prefix) else prefix + k): v for k, v in values.items()
            }
            data["agent_step"] = step
            self._run.log(data)

    def _mark_session(self, step: int) -> None:
        """Note where this process starts; plots drop what an earlier process logged after
        this step (that progress was lost with the earlier process's last segment)."""
        self._session_logged = True
        now = round(time.time(), 3)
        self._write({"step": step, "kind": "session", "time": now, "run_id": self.run_id})

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")

    def log_video(self, step: int, path: Path, key: str = "eval/video") -> None:
        """Log an MP4/GIF file to W&B (copied into the run) and note it in metrics.jsonl."""
        path = Path(path)
        fmt = _VIDEO_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(
                f"video {path} has suffix {path.suffix!r}; valid: {', '.join(_VIDEO_FORMATS)}"
            )
        if not path.is_file():
            raise FileNotFoundError(f"video {path} does not exist")
        if not self._session_logged:
            self._mark_session(step)
        self._write({"step": step, "kind": "video", "time": round(time.time(), 3), key: str(path)})
        if self._run is not None:
            import wandb

            video = wandb.Video(str(path), format=fmt)  # type: ignore[arg-type]
            self._run.log({key: video, "agent_step": step})

    def plot(self) -> Path | None:
        """Redraw ``RUN/curves.png`` from metrics.jsonl (atomically) and return its path.

        The curves never stop a run: damaged lines of metrics.jsonl are left out, and a
        failure to draw is one warning line (once per kind of failure), then None.
        """
        try:
            records = read_metrics(self.metrics_path, skip_bad=True)
            return plot_metrics(records, self.run_dir / CURVES)
        except Exception as error:
            why = " ".join(f"{type(error).__name__}: {error}".split())[:160]
            if why not in self._plot_failures:
                self._plot_failures.add(why)
                print(
                    f"warning: could not draw {self.run_dir / CURVES} ({why}); training goes on",
                    file=sys.stderr,
                    flush=True,
                )
            return None

    def close(self, exit_code: int = 0) -> None:
        """Finish the W&B run, wait until its files are written, close metrics.jsonl.

        Safe to call twice.
        """
        if self._run is not None:
            import wandb

            run, self._run = self._run, None
            try:
                run.finish(exit_code=exit_code)
                # finish() returns before W&B's service has written the run's files;
                # teardown waits for it (the atexit hook that would do so is unreliable
                # with multiprocessing, and the next Tracker simply starts a new service).
                wandb.teardown(exit_code=exit_code)
            finally:
                _sync_staging_dirs(-1)
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(0 if exc_type is None else 1)


def _drop_partial_last_line(path: Path) -> None:
    """Cut a line that a kill left without its newline, so appends start on a fresh line."""
    try:
        with open(path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            pos = size
            while pos > 0:
                start = max(0, pos - 65536)
                f.seek(start)
                chunk = f.read(pos - start)
                cut = chunk.rfind(b"\n")
                if cut >= 0:
                    f.truncate(start + cut + 1)
                    return
                pos = start
            f.truncate(0)
    except FileNotFoundError:
        return


def read_metrics(path: Path, *, skip_bad: bool = False) -> list[dict[str, Any]]:
    """Records of a metrics.jsonl; an unfinished last line (from a kill) is skipped.

    A malformed line elsewhere raises ValueError naming the file and line (``skip_bad``:
    it is left out instead, as the plots do).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if number == len(lines) or skip_bad:  # no newline after the last: cut short
                continue
            raise ValueError(f"{path}:{number}: not a JSON line") from None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            if skip_bad:
                continue
            raise ValueError(f"{path}:{number}: not a metrics record (needs an int 'step')")
        records.append(record)
    return records


def _drop_rewound(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep one history: a session that starts at step S (a resume from the checkpoint at
    S) replaces what earlier sessions logged after S."""
    kept: list[dict[str, Any]] = []
    for record in records:
        if record.get("kind") == "session":
            kept = [r for r in kept if r["step"] <= record["step"]]
        kept.append(record)
    return kept


def _series(
    records: list[dict[str, Any]], kind: str, keys: tuple[str, ...]
) -> tuple[list[int], list[float]]:
    """Steps and values of the first of ``keys`` (or ``<kind>/<key>``) each record has."""
    names = [n for key in keys for n in (key, f"{kind}/{key}")]
    xs: list[int] = []
    ys: list[float] = []
    for r in records:
        if r.get("kind") != kind:
            continue
        value = next((r[n] for n in names if n in r), None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            xs.append(r["step"])
            ys.append(float(value))
    return xs, ys


def _rolling_mean(values: list[float], window: int) -> list[float]:
    out: list[float] = []
    total = 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


# (title, kind, accepted keys, rolling mean) for each panel of curves.png
_PANELS: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("episode return", "episode", ("return",), True),
    ("episode x_pos", "episode", ("x_pos",), True),
    ("loss", "train", ("loss",), True),
    ("epsilon", "train", ("epsilon",), False),
    ("eval x_pos (mean)", "eval", ("x_pos_mean", "x_pos"), False),
    ("eval flag rate", "eval", ("flag_rate",), False),
)


def plot_metrics(records: list[dict[str, Any]], out: Path) -> Path:
    """Draw the learning curves of ``records`` into the PNG ``out`` (temp file + rename)."""
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas

    records = _drop_rewound(records)
    fig = Figure(figsize=(13, 7.5), dpi=100, layout="constrained")
    axes = fig.subplots(2, 3)
    for ax, (title, kind, keys, smooth) in zip(axes.flat, _PANELS, strict=True):
        xs, ys = _series(records, kind, keys)
        key = keys[0]
        ax.set_title(title)
        ax.set_xlabel("agent steps")
        ax.grid(alpha=0.3)
        if not xs:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
            continue
        if smooth:
            window = max(1, min(100, math.ceil(len(ys) / 10)))
            ax.plot(xs, ys, ".", ms=2, alpha=0.3, label=key)
            ax.plot(xs, _rolling_mean(ys, window), lw=1.5, label=f"mean of last {window}")
            ax.legend(loc="upper left", fontsize="small")
        else:
            ax.plot(xs, ys, lw=1.2, marker="o" if len(xs) < 30 else None, ms=3)
        if key == "loss" and min(ys) > 0 and max(ys) / min(ys) > 100:
            ax.set_yscale("log")
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
