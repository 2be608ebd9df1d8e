"""The Python SDK: ``lockgate.connect()`` returns a client with the same methods whether it
works on a local workspace (embedded) or, later, a remote server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lockgate.audit.events import ChainReport, Event, iter_events, verify_chain
from lockgate.clock import Clock
from lockgate.errors import InvalidInputError
from lockgate.registry.loaded import LoadedModel
from lockgate.registry.models import AliasMove, ModelInfo, ModelVersion
from lockgate.registry.signature import Signature
from lockgate.settings import Settings
from lockgate.workspace import Workspace

if TYPE_CHECKING:
    from lockgate.feedback import FeedbackResult
    from lockgate.rollout.service import RolloutInfo

if TYPE_CHECKING:
    from lockgate.gates.policy import GatePolicy
    from lockgate.gates.report import ValidationReport


class Client:
    """Embedded client over a :class:`~lockgate.workspace.Workspace`."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    # registry ---------------------------------------------------------------------------
    def register_model(
        self,
        name: str,
        model_or_path: Any,
        *,
        sample: Any = None,
        reference: pd.DataFrame | str | Path | None = None,
        target: str | None = None,
        signature: Signature | Mapping[str, Any] | None = None,
        flavor: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        description: str = "",
        trust_pickle: bool = False,
        training_data: pd.DataFrame | str | Path | None = None,
        parent: int | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Register a model object or a model file/folder as the next version of ``name``.

        ``sample`` (or ``reference``) gives the signature; ``reference`` is also profiled for
        drift detection; ``target`` names a label column in ``reference`` to leave out of the
        signature."""
        return self.workspace.registry.register(
            name,
            model_or_path,
            flavor=flavor,
            signature=signature,
            sample=sample,
            reference=reference,
            target=target,
            metrics=metrics,
            params=params,
            tags=tags,
            description=description,
            trust_pickle=trust_pickle,
            training_data=training_data,
            parent=parent,
            options=options,
        )

    def get_version(self, ref: str) -> ModelVersion:
        """``name`` (latest), ``name/3`` or ``name@alias``."""
        return self.workspace.registry.get_version(ref)

    def list_models(self) -> list[ModelInfo]:
        return self.workspace.registry.list_models()

    def get_model(self, name: str) -> ModelInfo:
        return self.workspace.registry.get_model(name)

    def list_versions(self, name: str) -> list[ModelVersion]:
        return self.workspace.registry.list_versions(name)

    def set_alias(self, name: str, alias: str, version: int, *, reason: str = "") -> AliasMove:
        return self.workspace.registry.set_alias(name, alias, version, reason=reason)

    def delete_alias(self, name: str, alias: str, *, reason: str = "") -> AliasMove:
        return self.workspace.registry.delete_alias(name, alias, reason=reason)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        return self.workspace.registry.alias_history(name, alias)

    def load(self, ref: str) -> LoadedModel:
        """Load ``name/3`` or ``name@champion``; the artifact's hash is checked first."""
        return self.workspace.registry.load(ref)

    # gates ------------------------------------------------------------------------------
    def validate(
        self,
        model: str,
        version: int,
        *,
        against: str | None = None,
        eval_data: pd.DataFrame | str | Path | None = None,
        target: str | None = None,
        sensitive: Sequence[str] = (),
        policy: GatePolicy | Mapping[str, Any] | str | Path | None = None,
        save_policy: bool = False,
    ) -> ValidationReport:
        """Run the gates of ``policy`` (default: the model's saved policy, else schema +
        smoke, quality against ``against`` and fairness over ``sensitive``) on
        ``model/version``; the report is stored with the version and returned."""
        return self.workspace.gates.validate(
            model,
            version,
            against=against,
            eval_data=eval_data,
            target=target,
            sensitive=sensitive,
            policy=policy,
            save_policy=save_policy,
        )

    def gate_reports(self, model: str, version: int | None = None) -> list[ValidationReport]:
        """Validation reports of ``model`` (of one version when given), newest first."""
        return self.workspace.gates.reports(model, version)

    # audit ------------------------------------------------------------------------------
    def events(self, *, kind: str | None = None, subject: str | None = None) -> list[Event]:
        return list(iter_events(self.workspace.db, kind=kind, subject=subject))

    def verify_events(self) -> ChainReport:
        """Verify the event chain and its signed checkpoints (with the audit key)."""
        from lockgate.audit.keys import audit_key

        return verify_chain(self.workspace.db, audit_key(self.workspace.settings, create=False))

    def kpis(self, **options: Any) -> dict[str, Any]:
        """Delivery and operations KPIs (``period="30d"``, ``model``, ``failure_window``,
        ``slo_latency_ms``, ``quality_buckets``; see docs/kpis.md)."""
        from lockgate.audit.service import AuditService

        return AuditService(self.workspace).kpis(**options)

    def model_card(self, model: str, version: int) -> dict[str, Any]:
        """The model card of ``model/version`` (render with lockgate.audit.cards)."""
        from lockgate.audit.service import AuditService

        return AuditService(self.workspace).card(model, version)

    # rollouts and feedback ----------------------------------------------------------------
    def start_rollout(self, endpoint: str, candidate: int, **options: Any) -> RolloutInfo:
        """Roll ``candidate`` out on ``endpoint``: ``strategy`` (shadow, canary, ab,
        shadow-then-canary), ``steps``, ``interval``, ``max_failures``, ``ab_weights``,
        ``shadow_percent``, ``key_column``, ``analysis`` (thresholds), ``reason``."""
        from lockgate.rollout.service import RolloutService

        return RolloutService(self.workspace).start(endpoint, candidate, **options)

    def rollout_status(self, endpoint: str) -> RolloutInfo:
        """The active rollout of ``endpoint`` (else its latest), with its history."""
        from lockgate.rollout.service import RolloutService

        return RolloutService(self.workspace).status(endpoint)

    def rollouts(self, endpoint: str | None = None, *, active: bool = False) -> list[RolloutInfo]:
        from lockgate.rollout.service import RolloutService

        return RolloutService(self.workspace).list_rollouts(endpoint=endpoint, active=active)

    def pause_rollout(self, endpoint: str, *, reason: str = "") -> RolloutInfo:
        from lockgate.rollout.service import RolloutService

        return RolloutService(self.workspace).pause(endpoint, reason=reason)

    def resume_rollout(self, endpoint: str, *, reason: str = "") -> RolloutInfo:
        from lockgate.rollout.service import RolloutService

        return RolloutService(self.workspace).resume(endpoint, reason=reason)

    def promote_rollout(self, endpoint: str, *, reason: str = "") -> RolloutInfo:
        from lockgate.rollout.service import RolloutService

        return RolloutService(self.workspace).promote(endpoint, reason=reason)

    def abort_rollout(self, endpoint: str, *, reason: str = "") -> RolloutInfo:
        from lockgate.rollout.service import RolloutService

        return RolloutService(self.workspace).abort(endpoint, reason=reason)

    def send_feedback(self, endpoint: str, items: Any) -> FeedbackResult:
        """Ground truth for served predictions: up to 10,000 items ``{"id", "value",
        "metrics"?}`` (or a DataFrame with ``id`` and ``value`` columns, other numeric
        columns being business metrics). Unknown ids come back in ``unknown_ids``."""
        from lockgate.feedback import FeedbackService, frame_items

        if isinstance(items, pd.DataFrame):
            items = frame_items(items)
        return FeedbackService(self.workspace).send(endpoint, items)

    def quality(self, endpoint: str, **window: Any) -> list[dict[str, Any]]:
        """Live quality per version and role from feedback joined to the prediction log."""
        from lockgate.feedback import FeedbackService

        return FeedbackService(self.workspace).quality(endpoint, **window)

    def close(self) -> None:
        self.workspace.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    uri: str | Path | None = None,
    *,
    artifacts_url: str | None = None,
    clock: Clock | None = None,
    **settings: Any,
) -> Client:
    """Open a client.

    * ``None``: the workspace named by ``LOCKGATE_HOME`` (default ``./.lockgate``);
    * a folder path: that folder as the workspace home;
    * a database URL (``sqlite:///...``, ``postgresql://...``): that metadata store, with
      artifacts under ``artifacts_url`` or ``LOCKGATE_ARTIFACTS_URL``.
    """
    overrides: dict[str, Any] = dict(settings)
    if artifacts_url is not None:
        overrides["artifacts_url"] = artifacts_url
    if uri is not None:
        text = str(uri)
        if text.startswith(("http://", "https://")):
            raise InvalidInputError.for_field(
                "uri",
                "a workspace folder or a database URL (remote servers are not supported "
                "by this client yet)",
                text,
            )
        if "://" in text:
            overrides["database_url"] = text
        else:
            overrides["home"] = Path(text)
    return Client(Workspace(Settings(**overrides), clock=clock))
