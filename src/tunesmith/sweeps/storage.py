"""Where a study lives: SQLite in the sweep folder by default, or any SQLAlchemy URL (PostgreSQL) that
several workers on several machines share.

Both go through Optuna's `RDBStorage` with a heartbeat: a running trial writes a heartbeat every
`heartbeat_seconds`; a trial silent for `grace_seconds` (its worker was killed) is marked FAIL by the next
worker that looks, and `RetryHeartbeatStaleTrialCallback` (the name Optuna 4.9+ gives the
`RetryFailedTrialCallback`) queues a copy of it (same parameters) for any worker to run. The retry trains
in the same run folder (named after the configuration, `trial.run_dir_name`), so it resumes from the
killed worker's last complete checkpoint.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from tunesmith.errors import UserError

MAX_RETRY = 3

HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 120


def optuna_module() -> Any:
    try:
        import optuna
    except ImportError:
        raise UserError("tunesmith sweep needs Optuna — pip install 'tunesmith[sweep]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def default_url(sweep_dir: Path) -> str:
    return f"sqlite:///{(sweep_dir / 'study.db').resolve()}"


def make_storage(
    url: str, *, heartbeat_seconds: int = HEARTBEAT_SECONDS, grace_seconds: int = GRACE_SECONDS
) -> Any:
    optuna = optuna_module()
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}  # the heartbeat thread and the trial share the file
    try:
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_seconds,
            grace_period=grace_seconds,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
        )
    except ImportError:
        raise UserError(
            f"--storage {_redact(url)}: no database driver for this URL — pip install 'tunesmith[sweep]' "
            "(SQLAlchemy + psycopg2 for postgresql://)"
        ) from None
    except optuna.exceptions.StorageInternalError as err:
        raise UserError(
            f"--storage {_redact(url)}: cannot open the study database ({_first_line(err)})"
        ) from None
    except Exception as err:  # SQLAlchemy's connection errors: one line, no password
        if type(err).__module__.startswith("sqlalchemy"):
            raise UserError(f"--storage {_redact(url)}: cannot connect ({_first_line(err)})") from None
        raise


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__


def _redact(url: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db"""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}"
    return url


def open_study(storage: Any, name: str, *, create: bool, sampler: Any) -> Any:
    """The study `name` (created when `create`; a worker only joins an existing one)."""
    optuna = optuna_module()
    from tunesmith.sweeps.objectives import DIRECTIONS

    if create:
        return optuna.create_study(
            study_name=name,
            storage=storage,
            directions=list(DIRECTIONS),
            sampler=sampler,
            load_if_exists=True,
        )
    try:
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    except KeyError:
        raise UserError(
            f"--worker: no study {name!r} in the storage yet — start it first with the same command without --worker"
        ) from None
