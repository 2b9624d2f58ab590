"""Which Weights & Biases mode a run can use, decided before anything is written.

``resolve_wandb_mode`` turns ``auto``/``online``/``offline``/``disabled`` into the mode to use
with a one-line note: online needs an API key, looked up the way wandb looks it up (its
environment variables, netrc file and settings files; no prompt, no network). Also here:
wandb's staging folders, which exist only while this process has a W&B run open.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from pathlib import Path

from mario.storage.metrics import METRICS

WANDB_MODES = ("auto", "online", "offline", "disabled")


#: Default bound on ``wandb.init`` in online mode, in seconds (W&B's own default is 90 and
#: it retries for longer); ``$WANDB_INIT_TIMEOUT`` or ``Tracker(init_timeout=...)`` change it.
WANDB_INIT_TIMEOUT_S = 30.0


class WandbConfigError(ValueError):
    """W&B cannot log online as configured (no API key, or one W&B would reject).

    The message is one line: what is wrong and how to fix it.
    """


def sync_hint(run_dir: Path | None) -> str:
    # The folder is quoted for the shell; the glob stays outside the quotes so it expands.
    folder = shlex.quote(str(run_dir / "wandb")) if run_dir is not None else "RUN_DIR/wandb"
    return f"upload later with `wandb sync {folder}/offline-run-*`"


def one_line(error: BaseException, limit: int = 240) -> str:
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


def sync_staging_dirs(change: int = 0) -> None:
    """Count runs opened (+1) or closed (-1); make wandb's staging folders exist iff one is."""
    global _open_runs
    _open_runs += change
    for folder in _wandb_staging_dirs():
        if _open_runs > 0:
            os.makedirs(folder.name, mode=0o700, exist_ok=True)
        else:
            folder.cleanup()  # also detaches its exit-time finalizer; safe to repeat


def wandb_key_problem() -> str | None:
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

    sync_staging_dirs()
    try:
        settings = Settings()
        config_dir = os.environ.get(env.CONFIG_DIR)
        system = Path(config_dir).expanduser() if config_dir else Path.home() / ".config/wandb"
        settings.settings_system = str(system / "settings")
        settings.update_from_system_settings()
        settings.update_from_env_vars(dict(os.environ))
        host = wbauth.HostUrl(settings.base_url, app_url=settings.app_url)
    except ValueError as e:  # pydantic's ValidationError is a ValueError too
        return f"the W&B settings are invalid: {one_line(e)}"
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


def resolve_wandb_mode(requested: str, run_dir: Path | None = None) -> tuple[str, str | None]:
    """Turn a requested W&B mode into the one to use, with a one-line note for the user.

    ``auto``: ``$WANDB_MODE`` if set, else online when W&B has an API key for its server
    (see :func:`wandb_key_problem`), else offline. Offline comes with a message that says
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
            problem = wandb_key_problem()
            mode, reason = ("online", "") if problem is None else ("offline", f" ({problem})")
    elif requested == "online":
        problem = wandb_key_problem()
        if problem is not None:
            raise WandbConfigError(
                f"--wandb-mode online: {problem}; run `wandb login`, set WANDB_API_KEY, "
                "or use --wandb-mode offline (upload later with `wandb sync`) or --wandb-mode "
                "disabled"
            )
    if mode == "offline":
        return mode, f"W&B is offline{reason}; {sync_hint(run_dir)}"
    if mode == "disabled" and requested == "auto":
        return mode, f"W&B is disabled{reason}; metrics go to {METRICS} only"
    return mode, None
