"""``check_runtime``: the conformance suite every runtime passes, ours and third parties' alike.

Like scikit-learn's ``check_estimator``, it runs a real model through a runtime class and
raises :class:`AssertionError` with a message naming the check and what went wrong::

    from lockgate.runtimes.check import check_runtime
    check_runtime(MyRuntime, fitted_model, sample_frame)

The checks, in order:

``contract``
    ``flavor``/``requires`` are declared, ``framework_versions()`` maps names to versions, the
    constructor only stores its arguments, and loading a missing path raises
    :class:`~lockgate.errors.ModelLoadError` naming the path.
``detect``
    ``save()`` writes an artifact that ``detect()`` recognises; an unrelated file is not claimed.
``trust``
    an artifact that ``requires_trust()`` refuses to load untrusted
    (:class:`~lockgate.errors.UntrustedArtifactError`).
``round trip``
    save -> load -> predict equals ``expected`` (default: the original model's ``predict``
    on the sample) within ``atol``.
``rows``
    one output row per input row, the same answer twice, and each row's answer independent of
    the rest of the batch (a single row, the batch reversed).
``batch``
    ``predict_batch`` on a columnar :class:`~lockgate.batch.Batch` (built from columns, and
    from one matrix when every column is numeric) gives what ``predict`` gives.
``signature``
    with a signature inferred from the sample, ``validate(sample)`` then ``predict`` gives the
    same result, and a frame missing a column is rejected by ``validate`` naming the column.
``predict_proba``
    ``None``, or one row per input row (and equal to the original model's, when it has one).
``metadata``
    a JSON-serialisable dict whose ``flavor`` is the runtime's.
``unload``
    after ``unload()`` the runtime is not ``loaded``, ``predict`` raises ModelLoadError and the
    loaded model object is garbage (a weak reference to it dies); loading again works.
``registry``
    when the SDK is available (``lockgate.connect``): register the model in a temporary
    workspace, load ``name/1`` and predict the expected values again.
"""

from __future__ import annotations

import contextlib
import gc
import json
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lockgate.batch import Batch
from lockgate.errors import LockgateError, ModelLoadError, SchemaError, UntrustedArtifactError
from lockgate.registry.signature import Signature
from lockgate.runtimes.base import Runtime

__all__ = ["check_runtime"]

#: relative tolerance between a row predicted alone and in a batch: vectorised maths (BLAS)
#: may round differently by batch size; mixing rows up differs by far more
_BATCH_RTOL = 1e-5


def check_runtime(
    runtime_cls: type[Runtime],
    model: Any,
    sample: pd.DataFrame,
    *,
    expected: np.ndarray | None = None,
    trusted: bool = False,
    workspace: str | Path | None = None,
    atol: float = 0.0,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Run the conformance suite for ``runtime_cls`` on ``model`` and ``sample`` (see the module
    docstring). ``expected`` defaults to ``model.predict(sample)``; give it for models without a
    ``predict`` (ONNX, torch). ``model`` may also be the path of an existing artifact (a file
    or folder, e.g. an MLflow model), which is copied instead of saved; ``expected`` is then
    required. ``trusted`` and ``options`` are passed to the runtime. ``workspace`` is a folder
    for artifacts (default: a temporary folder, removed afterwards). Raises AssertionError."""
    if not (isinstance(runtime_cls, type) and issubclass(runtime_cls, Runtime)):
        raise TypeError(f"check_runtime needs a Runtime subclass, got {runtime_cls!r}")
    if not isinstance(sample, pd.DataFrame) or len(sample) == 0:
        raise TypeError("check_runtime needs a non-empty pandas DataFrame as sample")
    checker = _Checker(runtime_cls, model, sample, trusted=trusted, atol=atol, options=options)
    if expected is None and isinstance(model, (str, Path)):
        raise TypeError("check_runtime needs expected= when model is an artifact path")
    if expected is None:
        expected = checker.original_predictions()
    checker.expected = np.asarray(expected)
    with _workspace(workspace) as ws:
        checker.run(ws)


@contextlib.contextmanager
def _workspace(workspace: str | Path | None) -> Iterator[Path]:
    if workspace is None:
        with tempfile.TemporaryDirectory(prefix="lockgate-check-") as tmp:
            yield Path(tmp)
    else:
        root = Path(workspace) / f"check-{uuid.uuid4().hex[:8]}"
        root.mkdir(parents=True)
        yield root


class _Checker:
    def __init__(
        self,
        runtime_cls: type[Runtime],
        model: Any,
        sample: pd.DataFrame,
        *,
        trusted: bool,
        atol: float,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.cls = runtime_cls
        self.options = dict(options or {})
        self.model = model
        self.sample = sample
        self.trusted = trusted
        self.atol = atol
        self.expected: np.ndarray = np.empty(0)

    # -- helpers -----------------------------------------------------------------------------
    def fail(self, check: str, message: str) -> AssertionError:
        return AssertionError(f"check_runtime({self.cls.__name__}) [{check}]: {message}")

    def expect(self, check: str, condition: bool, message: str) -> None:
        if not condition:
            raise self.fail(check, message)

    def same(self, check: str, what: str, got: Any, expected: Any, *, rtol: float = 0.0) -> None:
        problem = _difference(np.asarray(got), np.asarray(expected), self.atol, rtol)
        if problem:
            raise self.fail(check, f"{what}: {problem}")

    def original_predictions(self) -> np.ndarray:
        predict = getattr(self.model, "predict", None)
        if not callable(predict):
            raise TypeError(
                f"{type(self.model).__qualname__} has no predict(); pass expected= to check_runtime"
            )
        return np.asarray(predict(self.original_input()))

    def original_input(self) -> Any:
        """The sample as the original model takes it."""
        if hasattr(self.model, "n_features_in_") and not hasattr(self.model, "feature_names_in_"):
            return self.sample.to_numpy()  # a scikit-learn-style model fitted without names
        return self.sample

    def new(self, path: Path, trusted: bool | None = None) -> Runtime:
        return self.cls(
            path, trusted=self.trusted if trusted is None else trusted, options=self.options
        )

    # -- the suite ---------------------------------------------------------------------------
    def run(self, ws: Path) -> None:
        self.check_contract(ws)
        artifact = self.check_detect(ws)
        self.check_trust(artifact)
        runtime = self.new(artifact)
        try:
            runtime.load()
        except Exception as exc:
            raise self.fail("round trip", f"load() of the saved artifact raised {exc!r}") from exc
        self.expect("round trip", runtime.loaded, "`loaded` is False after load()")
        signature = Signature.infer(self.sample)
        valid = signature.validate(self.sample)
        got = self.predict("round trip", runtime, valid)
        self.same(
            "round trip", "predictions after save -> load differ from expected", got, self.expected
        )
        self.check_rows(runtime, valid, got)
        self.check_batch(runtime, valid, got)
        self.check_signature(runtime, signature)
        self.check_proba(runtime, valid)
        self.check_metadata(runtime)
        self.check_unload(runtime, valid)
        self.check_registry(ws)

    def predict(self, check: str, runtime: Runtime, frame: pd.DataFrame) -> np.ndarray:
        try:
            out = runtime.predict(frame)
        except Exception as exc:
            raise self.fail(check, f"predict() raised {exc!r}") from exc
        self.expect(
            check,
            isinstance(out, np.ndarray),
            f"predict() must return a numpy.ndarray, got {type(out).__qualname__}",
        )
        return out

    def check_contract(self, ws: Path) -> None:
        cls = self.cls
        self.expect(
            "contract",
            isinstance(getattr(cls, "flavor", None), str) and bool(cls.flavor),
            "the class must declare a non-empty `flavor` string",
        )
        self.expect(
            "contract",
            isinstance(cls.requires, tuple) and all(isinstance(r, str) for r in cls.requires),
            "`requires` must be a tuple of distribution names",
        )
        versions = cls.framework_versions()
        self.expect(
            "contract",
            isinstance(versions, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items()),
            f"framework_versions() must map names to version strings, got {versions!r}",
        )
        missing = ws / "no-such-model"
        try:
            runtime = self.new(missing)
        except Exception as exc:
            raise self.fail(
                "contract",
                f"the constructor must only store its arguments, but "
                f"constructing on a missing path raised {exc!r}",
            ) from exc
        self.expect("contract", not runtime.loaded, "`loaded` is True before load()")
        try:
            runtime.load()
        except ModelLoadError as exc:
            self.expect(
                "contract",
                missing.name in str(exc),
                f"ModelLoadError for a missing path must name the path, got {exc}",
            )
        except Exception as exc:
            raise self.fail(
                "contract", f"load() of a missing path must raise ModelLoadError, raised {exc!r}"
            ) from exc
        else:
            raise self.fail("contract", "load() of a missing path did not raise")

    def check_detect(self, ws: Path) -> Path:
        target = ws / "artifact"
        target.mkdir()
        if isinstance(self.model, (str, Path)):
            artifact = _copy(Path(self.model), target)
        else:
            try:
                artifact = Path(self.cls.save(self.model, target))
            except Exception as exc:
                raise self.fail("detect", f"save() raised {exc!r}") from exc
        self.expect(
            "detect", artifact.exists(), f"save() returned {artifact}, which does not exist"
        )
        self.expect(
            "detect",
            artifact.resolve().is_relative_to(target.resolve()),
            f"save() must write inside the given folder, returned {artifact}",
        )
        self.expect(
            "detect",
            self.cls.detect(artifact),
            f"detect() does not recognise the artifact save() wrote ({artifact.name})",
        )
        stranger = ws / "notes.txt"
        stranger.write_text("not a model\n")
        self.expect(
            "detect", not self.cls.detect(stranger), "detect() claims an unrelated text file"
        )
        self.expect(
            "detect",
            not self.cls.detect(ws / "no-such-model"),
            "detect() claims a path that does not exist",
        )
        return artifact

    def check_trust(self, artifact: Path) -> None:
        if not self.cls.requires_trust(artifact):
            return
        runtime = self.new(artifact, trusted=False)
        try:
            runtime.load()
        except UntrustedArtifactError:
            pass
        except Exception as exc:
            raise self.fail(
                "trust",
                f"loading an artifact that requires trust, untrusted, must "
                f"raise UntrustedArtifactError, raised {exc!r}",
            ) from exc
        else:
            raise self.fail("trust", "an artifact that requires_trust() loaded without trust")
        self.expect(
            "trust",
            self.trusted,
            "the saved artifact requires trust; pass trusted=True if that is intended",
        )

    def check_rows(self, runtime: Runtime, valid: pd.DataFrame, got: np.ndarray) -> None:
        n = len(valid)
        self.expect(
            "rows",
            got.ndim >= 1 and got.shape[0] == n,
            f"expected one output row per input row ({n}), got shape {got.shape}",
        )
        again = self.predict("rows", runtime, valid)
        self.same("rows", "a second predict() on the same frame differs", again, got)
        one = self.predict("rows", runtime, valid.iloc[:1])
        self.same(
            "rows",
            "predicting the first row alone differs from the batch",
            one,
            got[:1],
            rtol=_BATCH_RTOL,
        )
        if n > 1:
            rev = self.predict("rows", runtime, valid.iloc[::-1])
            self.same(
                "rows",
                "predicting the rows in reverse order differs",
                rev[::-1],
                got,
                rtol=_BATCH_RTOL,
            )

    def check_batch(self, runtime: Runtime, valid: pd.DataFrame, got: np.ndarray) -> None:
        """``predict_batch`` (the serving hot path) agrees with ``predict`` on columnar batches
        built without a DataFrame: from columns, and from one matrix when all are numeric."""
        columns = {str(c): valid[c].to_numpy() for c in valid.columns}
        batches = [("columns", Batch(columns, len(valid)))]
        if all(a.dtype.kind in "biuf" and a.ndim == 1 for a in columns.values()):
            matrix = np.column_stack(list(columns.values()))
            batches.append(("a matrix", Batch.from_matrix(list(columns), matrix)))
        for kind, batch in batches:
            try:
                out = runtime.predict_batch(batch)
            except Exception as exc:
                raise self.fail("batch", f"predict_batch() on {kind} raised {exc!r}") from exc
            self.same(
                "batch",
                f"predict_batch() on {kind} differs from predict()",
                np.asarray(out),
                got,
                rtol=_BATCH_RTOL,
            )

    def check_signature(self, runtime: Runtime, signature: Signature) -> None:
        raw = self.predict("signature", runtime, self.sample)
        valid = self.predict("signature", runtime, signature.validate(self.sample))
        self.same("signature", "predict(validate(sample)) differs from predict(sample)", valid, raw)
        column = signature.input_names[0]
        try:
            signature.validate(self.sample.drop(columns=[self.sample.columns[0]]))
        except SchemaError as exc:
            self.expect(
                "signature",
                exc.field == column and column in str(exc),
                f"SchemaError for the missing column must name {column!r}, got {exc}",
            )
        else:
            raise self.fail("signature", f"a frame without column {column!r} passed validation")

    def check_proba(self, runtime: Runtime, valid: pd.DataFrame) -> None:
        try:
            proba = runtime.predict_proba(valid)
        except Exception as exc:
            raise self.fail("predict_proba", f"predict_proba() raised {exc!r}") from exc
        if proba is None:
            return
        self.expect(
            "predict_proba",
            isinstance(proba, np.ndarray) and proba.shape[:1] == (len(valid),),
            "predict_proba() must return one row per input row",
        )
        original = getattr(self.model, "predict_proba", None)
        if callable(original):
            self.same(
                "predict_proba",
                "probabilities after save -> load differ from the original model's",
                proba,
                np.asarray(original(self.original_input())),
            )

    def check_metadata(self, runtime: Runtime) -> None:
        meta = runtime.metadata()
        self.expect(
            "metadata",
            isinstance(meta, dict) and meta.get("flavor") == self.cls.flavor,
            f"metadata() must be a dict with flavor {self.cls.flavor!r}, got {meta!r}",
        )
        try:
            json.dumps(meta)
        except (TypeError, ValueError) as exc:
            raise self.fail("metadata", f"metadata() must be JSON-serialisable: {exc}") from exc

    def check_unload(self, runtime: Runtime, valid: pd.DataFrame) -> None:
        try:
            ref: weakref.ref[Any] | None = weakref.ref(runtime.model_)  # type: ignore[attr-defined]
        except (TypeError, AttributeError):
            ref = None  # not weak-referenceable: only the attribute checks apply
        runtime.unload()
        self.expect("unload", not runtime.loaded, "`loaded` is still True after unload()")
        try:
            runtime.predict(valid)
        except ModelLoadError:
            pass
        except Exception as exc:
            raise self.fail(
                "unload", f"predict() after unload() must raise ModelLoadError, raised {exc!r}"
            ) from exc
        else:
            raise self.fail("unload", "predict() after unload() did not raise")
        gc.collect()
        if ref is not None and ref() is not None:
            holders = [type(r).__qualname__ for r in gc.get_referrers(ref())][:5]
            raise self.fail(
                "unload",
                f"the model object is still alive after unload() and "
                f"gc.collect(); referred to by {holders}",
            )
        runtime.load()
        self.same(
            "unload",
            "predictions after unload() and load() again differ from expected",
            self.predict("unload", runtime, valid),
            self.expected,
        )
        runtime.unload()

    def check_registry(self, ws: Path) -> None:
        """Register through the SDK and load back, when the SDK is installed."""
        try:
            import lockgate
        except ImportError:
            return
        connect = getattr(lockgate, "connect", None)
        if connect is None:
            return
        from lockgate.runtimes import get_runtime

        try:
            registered = get_runtime(self.cls.flavor)
        except LockgateError:
            registered = None
        if registered is not self.cls:
            return  # the registry would load this flavor with another class (or not at all)
        name = f"check-{self.cls.flavor}-{uuid.uuid4().hex[:8]}".lower().replace("_", "-")
        home = ws / "registry"
        home.mkdir()
        # an isolated workspace: never the caller's database or artifact store
        client = connect(
            home,
            database_url=f"sqlite:///{home / 'lockgate.db'}",
            artifacts_url=str(home / "artifacts"),
            cache_dir=home / "cache",
        )
        try:
            client.register_model(
                name,
                self.model,
                sample=self.sample,
                flavor=self.cls.flavor,
                trust_pickle=self.trusted,
                options=self.options or None,
            )
            loaded = client.load(f"{name}/1")
            try:
                got = np.asarray(loaded.predict(self.sample))
            finally:
                loaded.unload()
        except Exception as exc:
            raise self.fail("registry", f"register -> load -> predict raised {exc!r}") from exc
        finally:
            close = getattr(client, "close", None)
            if callable(close):
                close()
        self.same(
            "registry", "predictions through the registry differ from expected", got, self.expected
        )


def _copy(source: Path, target: Path) -> Path:
    if not source.exists():
        raise TypeError(f"check_runtime: the artifact {str(source)!r} does not exist")
    out = target / source.name
    if source.is_dir():
        shutil.copytree(source, out)
    else:
        shutil.copy2(source, out)
    return out


def _difference(
    got: np.ndarray, expected: np.ndarray, atol: float, rtol: float = 0.0
) -> str | None:
    """None when ``got`` matches ``expected``, else what differs (shape or the first rows)."""
    if got.shape != expected.shape:
        return f"shape {got.shape} != expected {expected.shape}"
    if got.dtype.kind in "biuf" and expected.dtype.kind in "biuf":
        if atol or rtol:
            close = np.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
        else:
            close = np.asarray(got == expected)
            if got.dtype.kind == "f" and expected.dtype.kind == "f":
                close |= np.isnan(got) & np.isnan(expected)
    else:
        pairs = zip(got.ravel().tolist(), expected.ravel().tolist(), strict=True)
        close = np.array([a == b for a, b in pairs], dtype=bool).reshape(got.shape)
    if close.all():
        return None
    if close.ndim == 0:
        return f"got {got!r}, expected {expected!r}"
    rows = close.reshape(len(close), -1).all(axis=1)
    bad = np.flatnonzero(~rows)
    shown = "; ".join(f"row {i}: got {got[i]!r}, expected {expected[i]!r}" for i in bad[:3])
    tol = f" (atol={atol}, rtol={rtol})" if atol or rtol else ""
    return f"{len(bad)} of {len(rows)} rows differ{tol}; {shown}"
