"""Run tracking: :class:`Tracker` writes ``metrics.jsonl`` (always), Weights & Biases
(optional), TensorBoard (optional) and the learning curves.

In W&B every metric is logged as ``<kind>/<key>`` against the custom step metric
``agent_step``, so charts never go back in time after a resume (W&B's own step counter
keeps increasing; ours is a value).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import string
import sys
import time
from pathlib import Path
from typing import Any

from mario.storage.metrics import METRICS, drop_partial_last_line, read_metrics
from mario.storage.plots import CURVES, plot_metrics
from mario.storage.wandb_setup import WANDB_INIT_TIMEOUT_S, one_line, sync_staging_dirs

_RESERVED = ("step", "kind", "time")


_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


_VIDEO_FORMATS = {".mp4": "mp4", ".gif": "gif", ".webm": "webm", ".ogg": "ogg"}


def check_tensorboard() -> None:
    """ValueError saying how to install TensorBoard if its writer cannot be imported."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ValueError(
            "tensorboard logging needs the tensorboard package: "
            'pip install "mario[tensorboard]" (or leave out --tensorboard)'
        ) from None


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
        drop_partial_last_line(self.metrics_path)
        self._file = open(self.metrics_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._run: Any = None
        self._session_logged = False
        self.run_id = run_id or _new_run_id()
        if start_step is not None:
            self._mark_session(start_step)
        if wandb_mode == "disabled":
            return
        import wandb  # slow import; not needed when disabled

        sync_staging_dirs()

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
                        f"W&B was unreachable ({type(e).__name__}: {one_line(e)}); logging "
                        f"offline instead, upload later with `wandb sync {sync}`"
                    )
            else:
                self._run = init(wandb_mode)
        except BaseException:
            self._file.close()
            sync_staging_dirs()
            raise
        sync_staging_dirs(+1)
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
                sync_staging_dirs(-1)
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(0 if exc_type is None else 1)
