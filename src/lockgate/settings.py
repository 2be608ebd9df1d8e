"""Settings: one pydantic-settings tree, read from ``LOCKGATE_*`` environment variables.

Every setting is documented in ``docs/settings.md``; a test checks that the two agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Lockgate settings. Environment variables are the field names, upper-cased, prefixed
    with ``LOCKGATE_``."""

    model_config = SettingsConfigDict(env_prefix="LOCKGATE_", extra="ignore")

    home: Path = Field(
        default=Path(".lockgate"),
        description="Workspace folder: holds the default SQLite database and artifact folder.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata store. Default: sqlite file "
        "`<home>/lockgate.db`. PostgreSQL: `postgresql+psycopg://user@host/db`.",
    )
    artifacts_url: str | None = Field(
        default=None,
        description="fsspec URL or folder for content-addressed artifacts. "
        "Default: `<home>/artifacts`.",
    )
    trust_pickle: bool = Field(
        default=False,
        description="Trust pickle-based artifacts (joblib/pickle, MLflow pickled flavors) "
        "without a per-registration `--trust-pickle`. Only for artifacts you produced.",
    )
    actor: str | None = Field(
        default=None,
        description="Who is acting, recorded on every event. Default: the OS user name.",
    )
    audit_key: SecretStr | None = Field(
        default=None,
        description="Secret (16+ characters) that signs event-chain checkpoints and audit "
        "export manifests (HMAC-SHA256). Default: a random key in `<home>/audit.key`, created "
        "with mode 0600 on first use. Set it on every server sharing one database.",
    )
    cache_dir: Path | None = Field(
        default=None,
        description="Where verified artifacts are unpacked for loading. Default: `<home>/cache`.",
    )
    host: str = Field(default="127.0.0.1", description="Address `lockgate server` binds.")
    port: int = Field(default=8470, ge=0, le=65535, description="Port `lockgate server` binds.")
    log_predictions: bool = Field(
        default=True,
        description="Record every served prediction in the prediction log. `false` serves "
        "without recording (no drift, quality or audit of those predictions); for "
        "benchmarks and throwaway servers.",
    )
    log_durability: Literal["async", "sync"] = Field(
        default="async",
        description="Prediction log durability: `async` answers before the record is on disk "
        "(flushed every `log_flush_interval` seconds, drained on SIGTERM); `sync` answers "
        "only after the record is durable.",
    )
    log_flush_interval: float = Field(
        default=0.5, gt=0, le=60, description="Seconds between prediction log flushes (async)."
    )
    log_queue_size: int = Field(
        default=200_000, ge=100, description="Bound of the in-memory prediction log queue."
    )
    log_overflow: Literal["block", "reject"] = Field(
        default="block",
        description="When the prediction log queue is full: `block` waits for room (the "
        "request slows, nothing is lost), `reject` answers 503. Both are counted in "
        "`lockgate_prediction_log_overflow_total`.",
    )
    poll_interval: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Seconds between checks of endpoint definitions by a running server.",
    )

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, v: Path) -> Path:
        return v.expanduser()

    controller_interval: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Seconds between ticks of the rollout controller (each rollout is still "
        "analysed only on its own `--interval`).",
    )
    controller_lease_ttl: float = Field(
        default=15.0,
        gt=0,
        le=600,
        description="Seconds the controller's database lease lasts without renewal; with "
        "several servers on one database, another takes over this long after the leader "
        "dies.",
    )
    inference_threads: int = Field(
        default=1,
        ge=0,
        le=1024,
        description="Threads the numerical libraries of served models (BLAS, OpenMP) may use "
        "per call in `lockgate server`, set at start-up (`OMP_NUM_THREADS`, "
        "`OPENBLAS_NUM_THREADS`, `MKL_NUM_THREADS`). 1 suits many small requests on one event "
        "loop; `0` leaves the libraries' defaults (one thread per core) and those variables "
        "alone.",
    )
    shadow_workers: int = Field(
        default=2, ge=1, le=64, description="Threads that run shadow predictions."
    )
    shadow_queue: int = Field(
        default=1000,
        ge=1,
        description="Shadow requests waiting or running at most; beyond it a shadow copy "
        "is skipped and counted in `lockgate_shadow_skipped_total`.",
    )
    feedback_lookback_days: float = Field(
        default=30.0,
        gt=0,
        description="How far back the prediction log is searched for the ids of posted feedback.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Secret that signs alert webhooks (HMAC-SHA256 of the body in "
        "`X-Lockgate-Signature`) for webhooks defined without a secret of their own. Never "
        "logged or shown.",
    )
    webhook_timeout: float = Field(
        default=5.0, gt=0, le=120, description="Seconds one alert webhook request may take."
    )
    webhook_attempts: int = Field(
        default=4,
        ge=1,
        le=20,
        description="Attempts per alert webhook delivery (on connection errors, timeouts, 408, "
        "429 and 5xx answers).",
    )
    webhook_backoff: float = Field(
        default=0.5,
        ge=0,
        le=60,
        description="Seconds before the first webhook retry; doubled for each next one (at "
        "most 30 s).",
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'lockgate.db').resolve()}"

    @property
    def resolved_artifacts_url(self) -> str:
        if self.artifacts_url:
            return self.artifacts_url
        return str((self.home / "artifacts").resolve())

    @property
    def resolved_cache_dir(self) -> Path:
        return (self.cache_dir or self.home / "cache").resolve()

    @property
    def predictions_dir(self) -> Path:
        return (self.home / "predictions").resolve()


def get_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with explicit overrides taking precedence."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
