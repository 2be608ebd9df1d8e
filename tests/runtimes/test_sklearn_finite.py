"""The scikit-learn runtime checks NaN and infinity itself, by the model's own tag, and then
lets scikit-learn skip its slower check: same predictions, a named 4xx error instead of a
failed prediction, scikit-learn's configuration left as it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lockgate.batch import Batch
from lockgate.errors import InvalidInputError, PredictionError
from lockgate.runtimes.finite import nonfinite_error, refusal_error
from lockgate.runtimes.sklearn import SklearnRuntime

NAMES = ["a", "b", "c"]


def _loaded(model: object, tmp_path: Path) -> SklearnRuntime:
    path = SklearnRuntime.save(model, tmp_path / "m")
    rt = SklearnRuntime(path)
    rt.load()
    return rt


def _data(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.int64)


def test_a_model_without_nan_support_gets_its_own_predictions(tmp_path: Path) -> None:
    X, y = _data()
    model = LogisticRegression().fit(X, y)
    rt = _loaded(model, tmp_path)
    assert rt.allow_nan_ is False
    got = rt.predict_batch(Batch.from_matrix(NAMES, X))
    np.testing.assert_array_equal(got, model.predict(X))
    assert sklearn.get_config()["assume_finite"] is False  # restored


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_infinity_are_refused_by_column_and_row(tmp_path: Path, bad: float) -> None:
    X, y = _data()
    rt = _loaded(LogisticRegression().fit(X, y), tmp_path)
    rows = X[:4].copy()
    rows[2, 1] = bad
    for call in (rt.predict_batch, rt.check_batch):
        with pytest.raises(InvalidInputError) as info:
            call(Batch.from_matrix(NAMES, rows))
        assert str(info.value).startswith("b[2]: expected a finite number"), info.value
        assert str(bad) in str(info.value)
    assert sklearn.get_config()["assume_finite"] is False


def test_a_model_that_takes_nan_gets_it_but_not_infinity(tmp_path: Path) -> None:
    X, y = _data()
    X[::7, 2] = np.nan
    model = HistGradientBoostingClassifier(max_iter=10).fit(X, y)
    rt = _loaded(model, tmp_path)
    assert rt.allow_nan_ is True
    rows = X[:30].copy()
    np.testing.assert_array_equal(
        rt.predict_batch(Batch.from_matrix(NAMES, rows)), model.predict(rows)
    )
    rows[5, 0] = np.inf
    with pytest.raises(InvalidInputError, match=r"^a\[5\]: expected a number or NaN"):
        rt.predict_batch(Batch.from_matrix(NAMES, rows))


def test_a_pipeline_is_left_to_scikit_learn(tmp_path: Path) -> None:
    """Its tag says no NaN, yet its imputer takes them: scikit-learn's own check decides."""
    X, y = _data()
    model = make_pipeline(SimpleImputer(), LogisticRegression()).fit(X, y)
    rt = _loaded(model, tmp_path)
    rows = X[:10].copy()
    rows[3, 2] = np.nan
    assert rt.allow_nan_ is None
    np.testing.assert_array_equal(
        rt.predict_batch(Batch.from_matrix(NAMES, rows)), model.predict(rows)
    )


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (np.nan, "c[3]: expected a number (this model does not take NaN), got nan"),
        (np.inf, "c[3]: expected a finite number (this model does not take infinity), got inf"),
    ],
)
def test_a_pipeline_refusing_a_value_names_it(tmp_path: Path, bad: float, expected: str) -> None:
    """scikit-learn refuses inside the pipeline (the scaler passes NaN on, the classifier
    refuses it; the scaler refuses infinity): the request's error, by column and row."""
    X, y = _data()
    rt = _loaded(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y), tmp_path)
    rows = X[:6].copy()
    rows[3, 2] = bad
    with pytest.raises(InvalidInputError) as info:
        rt.predict_batch(Batch.from_matrix(NAMES, rows))
    assert str(info.value) == expected
    frame = Batch({n: rows[:, j] for j, n in enumerate(NAMES)}, len(rows))
    with pytest.raises(InvalidInputError) as info:
        rt.predict_batch(frame)  # column by column when no matrix was decoded
    assert str(info.value) == expected


def test_a_refusal_without_such_a_value_in_the_request_stays_the_models() -> None:
    """A NaN the model made itself (the request had none) is a failed prediction, and other
    errors are not read as refusals."""
    batch = Batch.from_matrix(NAMES, np.ones((2, 3)))
    assert refusal_error(batch, ValueError("Input X contains NaN.")) is None
    bad = Batch.from_matrix(NAMES, np.array([[1.0, np.nan, 2.0]]))
    assert refusal_error(bad, ValueError("X has 2 features, expected 3")) is None
    assert refusal_error(bad, TypeError("Input X contains NaN.")) is None
    assert refusal_error(bad, None) is None
    err = refusal_error(bad, ValueError("Input contains NaN"))  # older scikit-learn
    assert err is not None and str(err).startswith("b[0]: expected a number")


def test_a_failure_that_is_no_refusal_stays_a_failed_prediction(tmp_path: Path) -> None:
    X, y = _data()
    rt = _loaded(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y), tmp_path)
    with pytest.raises(PredictionError, match="features"):
        rt.predict_batch(Batch.from_matrix(["a", "b"], X[:3, :2]))


def test_integer_inputs_need_no_check(tmp_path: Path) -> None:
    X, y = _data()
    Xi = np.round(X * 10).astype(np.int64)
    model = LogisticRegression().fit(Xi, y)
    rt = _loaded(model, tmp_path)
    got = rt.predict_batch(Batch.from_matrix(NAMES, Xi[:20]))
    np.testing.assert_array_equal(got, model.predict(Xi[:20]))
    assert nonfinite_error(Batch.from_matrix(NAMES, Xi), allow_nan=False) is None


def test_the_one_pass_check_is_exact() -> None:
    """A sum that overflows is no infinity, NaN the model takes is no refusal."""
    huge = Batch.from_matrix(NAMES, np.full((2, 3), 1e308))
    assert nonfinite_error(huge, allow_nan=False) is None
    rows = np.ones((3, 3))
    rows[1, 2] = np.nan
    assert nonfinite_error(Batch.from_matrix(NAMES, rows), allow_nan=True) is None
    rows[2, 0] = -np.inf
    err = nonfinite_error(Batch.from_matrix(NAMES, rows), allow_nan=True)
    assert err is not None and str(err).startswith("a[2]: expected a number or NaN")
    err = nonfinite_error(Batch.from_matrix(NAMES, rows), allow_nan=False)
    assert err is not None and str(err).startswith("c[1]: expected a finite number")


def test_the_configuration_is_restored_when_the_model_raises(tmp_path: Path) -> None:
    X, y = _data()
    rt = _loaded(LogisticRegression().fit(X, y), tmp_path)
    with pytest.raises(Exception, match="features"):
        rt.predict_batch(Batch.from_matrix(["a", "b"], X[:3, :2]))  # 2 features, not 3
    assert sklearn.get_config()["assume_finite"] is False


def test_a_model_fitted_on_a_dataframe_is_checked_by_column(tmp_path: Path) -> None:
    X, y = _data()
    frame = pd.DataFrame(X, columns=NAMES)
    model = LogisticRegression().fit(frame, y)
    rt = _loaded(model, tmp_path)
    assert rt.wants_frame_ and rt.allow_nan_ is False
    rows = frame.iloc[:6].reset_index(drop=True)
    batch = Batch({n: rows[n].to_numpy() for n in NAMES}, len(rows))
    np.testing.assert_array_equal(rt.predict_batch(batch), model.predict(rows))
    bad = rows.copy()
    bad.loc[4, "c"] = np.nan
    batch = Batch({n: bad[n].to_numpy() for n in NAMES}, len(bad))
    with pytest.raises(InvalidInputError, match=r"^c\[4\]: expected a finite number"):
        rt.check_batch(batch)
    with pytest.raises(InvalidInputError, match=r"^c\[4\]"):
        rt.predict_batch(batch)
    assert sklearn.get_config()["assume_finite"] is False


def test_an_unloaded_runtime_checks_nothing(tmp_path: Path) -> None:
    X, y = _data()
    rt = SklearnRuntime(SklearnRuntime.save(LogisticRegression().fit(X, y), tmp_path / "m"))
    rows = X[:2].copy()
    rows[0, 0] = np.nan
    rt.check_batch(Batch.from_matrix(NAMES, rows))  # nothing known yet: no refusal
