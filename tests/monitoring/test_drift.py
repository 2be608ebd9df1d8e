from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from lockgate.errors import InvalidInputError, SchemaError
from lockgate.monitoring import (
    DriftConfig,
    DriftReport,
    NumericalProfile,
    Profile,
    compute_profile,
    detect_drift,
)
from lockgate.monitoring import profile as profile_module

CITIES = ["paris", "lyon", "nice", "lille"]


def frame(
    n: int, seed: int, *, shift: float = 0.0, city_p: list[float] | None = None
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40 + 10 * shift, 10, n),
            "income": rng.lognormal(10, 0.5, n),
            "city": rng.choice(CITIES, n, p=city_p or [0.4, 0.3, 0.2, 0.1]),
        }
    )


def test_known_shift_is_material_and_significant() -> None:
    ref = frame(5000, 0)
    report = detect_drift(ref, frame(5000, 1, shift=1.0, city_p=[0.1, 0.2, 0.3, 0.4]))
    age = report.column("age")
    assert age.test == "ks" and age.significant and age.material
    assert age.verdict == "drift"
    assert set(age.reasons) == {"psi", "wasserstein_norm"}
    assert age.effect["wasserstein_norm"] == pytest.approx(1.0, abs=0.1)
    city = report.column("city")
    assert city.test == "chi2" and city.verdict == "drift"
    assert "js_distance" in city.reasons
    assert report.column("income").verdict == "no_drift"
    assert report.drifted_columns == ["age", "city"]
    assert report.share_drifted == pytest.approx(2 / 3)
    assert report.drifted and report.verdict == "drift"


def test_subtle_shift_with_large_n_is_significant_but_not_material() -> None:
    ref = frame(200_000, 0)
    report = detect_drift(ref, frame(200_000, 1, shift=0.03))
    age = report.column("age")
    assert age.significant and age.p_value_adjusted is not None and age.p_value_adjusted < 1e-6
    assert not age.material
    assert age.effect["wasserstein_norm"] < 0.1 and age.effect["psi"] < 0.01
    assert age.verdict == "warning"
    assert not report.drifted and report.share_material == 0.0


def test_identical_distributions_are_neither_significant_nor_material() -> None:
    report = detect_drift(frame(20_000, 0), frame(20_000, 1))
    for col in report.columns:
        assert not col.significant and not col.material and col.verdict == "no_drift"
        assert col.p_value is not None and col.p_value > 0.05
    assert not report.drifted and report.verdict == "no_drift"
    same = detect_drift(frame(1000, 0), frame(1000, 0))
    assert all(c.statistic == 0.0 and c.p_value == 1.0 for c in same.columns)


def test_small_windows_give_insufficient_data_and_are_not_counted() -> None:
    ref = frame(1000, 0)
    report = detect_drift(ref, frame(99, 1, shift=3.0))
    assert {c.verdict for c in report.columns} == {"insufficient_data"}
    assert all(c.test is None and c.p_value is None for c in report.columns)
    assert report.n_tested == 0 and not report.drifted
    assert report.verdict == "insufficient_data"
    assert detect_drift(frame(99, 0), frame(1000, 1)).verdict == "insufficient_data"
    ok = detect_drift(ref, frame(50, 1, shift=3.0), DriftConfig(min_sample_size=50))
    assert ok.column("age").verdict == "drift"


def test_missing_rate_jump_is_material_even_when_values_look_alike() -> None:
    ref = frame(4000, 0)
    cur = frame(4000, 1)
    cur.loc[cur.index[:2000], "income"] = np.nan
    col = detect_drift(ref, cur).column("income")
    assert col.missing_rate_reference == 0.0 and col.missing_rate_current == 0.5
    assert col.effect["missing_rate_change"] == 0.5
    assert col.missing_significant and col.reasons == ("missing_rate_change",)
    assert not col.significant and col.verdict == "drift"
    assert col.n_current == 2000
    cur.loc[cur.index[:3950], "income"] = np.nan  # 50 values left: no KS, missing test runs
    col = detect_drift(ref, cur).column("income")
    assert col.test is None and col.verdict == "drift" and col.missing_significant


def test_unseen_categories_and_chi2_matches_scipy_on_the_union_table() -> None:
    ref = frame(3000, 0)
    cur = frame(3000, 1)
    cur.loc[cur.index[:300], "city"] = "rome"
    cur.loc[cur.index[300:330], "city"] = "oslo"
    col = detect_drift(ref, cur).column("city")
    assert col.effect["unseen_rate"] == pytest.approx(330 / 3000)
    ref_counts = ref["city"].value_counts()
    cur_counts = cur["city"].value_counts()
    cats = [*CITIES, "rome", "oslo"]
    table = np.array([[ref_counts.get(c, 0) for c in cats], [cur_counts.get(c, 0) for c in cats]])
    expected = stats.chi2_contingency(table)
    assert math.isclose(col.statistic or 0, expected.statistic, rel_tol=1e-9)
    assert math.isclose(col.p_value or 0, expected.pvalue, rel_tol=1e-9, abs_tol=1e-300)
    js = jensenshannon(table[0], table[1], base=2)
    assert math.isclose(col.effect["js_distance"], js, rel_tol=1e-9)
    assert col.material and col.verdict == "drift"


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=100, max_value=400),
    st.integers(min_value=100, max_value=400),
    st.floats(min_value=0, max_value=1),
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_report_numbers_match_scipy(n1: int, n2: int, shift: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({"x": np.round(rng.normal(0, 1, n1), 1), "c": rng.choice(list("abc"), n1)})
    cur = pd.DataFrame(
        {"x": np.round(rng.normal(shift, 1, n2), 1), "c": rng.choice(list("abcd"), n2)}
    )
    report = detect_drift(compute_profile(ref), cur)
    x, c = report.column("x"), report.column("c")
    ks = stats.ks_2samp(ref["x"], cur["x"])
    assert math.isclose(x.statistic or 0, ks.statistic, rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(x.p_value or 0, ks.pvalue, rel_tol=1e-9, abs_tol=1e-12)
    w = stats.wasserstein_distance(ref["x"], cur["x"]) / ref["x"].std()
    assert math.isclose(x.effect["wasserstein_norm"], w, rel_tol=1e-9, abs_tol=1e-12)
    cats = sorted(set(ref["c"]) | set(cur["c"]))
    table = np.array([[(ref["c"] == k).sum() for k in cats], [(cur["c"] == k).sum() for k in cats]])
    chi = stats.chi2_contingency(table)
    assert math.isclose(c.statistic or 0, chi.statistic, rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(c.p_value or 0, chi.pvalue, rel_tol=1e-9, abs_tol=1e-12)
    for col in report.columns:
        assert col.p_value is not None and col.p_value_adjusted is not None
        assert 0 <= col.p_value <= col.p_value_adjusted <= 1
        assert all(v >= 0 for v in col.effect.values())
    assert 0 <= report.share_drifted <= report.share_material <= 1


def test_numerical_psi_uses_reference_quantile_bins() -> None:
    ref = pd.DataFrame({"x": np.arange(1000, dtype=float)})
    cur = pd.DataFrame({"x": np.arange(1000, dtype=float) + 250})
    col = detect_drift(ref, cur).column("x")
    edges = np.arange(99, 900, 100)  # bins (-inf, 99], (99, 199], ..., (899, inf)
    cur_share = np.diff(np.concatenate(([0], np.searchsorted(cur["x"], edges, "right"), [1000])))
    q = np.maximum(cur_share / 1000, 1e-4)
    naive = sum((qi - 0.1) * math.log(qi / 0.1) for qi in q)
    assert col.effect["psi"] == pytest.approx(naive)
    twenty = detect_drift(ref, cur, DriftConfig(psi_bins=20)).column("x")
    assert twenty.effect["psi"] != pytest.approx(col.effect["psi"])


def test_constant_reference_column() -> None:
    ref = pd.DataFrame({"x": np.zeros(500)})
    assert detect_drift(ref, ref).column("x").effect["wasserstein_norm"] == 0.0
    moved = detect_drift(ref, pd.DataFrame({"x": np.ones(500)})).column("x")
    assert moved.effect["wasserstein_norm"] == math.inf and moved.verdict == "drift"
    assert moved.to_dict()["effect"]["wasserstein_norm"] is None


def test_profile_and_dataframe_references_give_the_same_report() -> None:
    ref, cur = frame(3000, 0), frame(2000, 1, shift=0.2)
    prof = Profile.from_bytes(compute_profile(ref).to_bytes())
    a = detect_drift(prof, cur).to_dict()
    b = detect_drift(ref, cur).to_dict()
    c = detect_drift(ref, cur, DriftConfig(max_workers=1)).to_dict()
    for d in (b, c):
        d["config"]["max_workers"] = a["config"]["max_workers"]
    assert a == b == c


def test_large_reference_profile_approximates_ks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profile_module, "MAX_EXACT_VALUES", 2001)
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 50_000)})
    cur = pd.DataFrame({"x": rng.normal(0.05, 1, 20_000)})
    prof = compute_profile(ref)
    col_prof = prof.columns["x"]
    assert isinstance(col_prof, NumericalProfile) and not col_prof.exact
    approx = detect_drift(prof, cur).column("x")
    exact = stats.ks_2samp(ref["x"], cur["x"])
    assert approx.n_reference == 50_000
    assert abs((approx.statistic or 0) - exact.statistic) <= 1 / 2000 + 1e-12
    assert approx.p_value == pytest.approx(exact.pvalue, rel=0.2)


def test_output_columns_are_judged_apart() -> None:
    ref = frame(3000, 0).assign(score=np.linspace(0, 1, 3000))
    cur = frame(3000, 1).assign(score=np.linspace(0.3, 1, 3000))
    report = detect_drift(ref, cur, DriftConfig(output_columns=["score"]))
    score = report.column("score")
    assert score.role == "output" and score.verdict == "drift"
    assert report.output_drifted is True and report.n_tested == 3
    assert not report.drifted and report.verdict == "drift"
    assert detect_drift(ref, cur).column("score").role == "feature"
    with pytest.raises(SchemaError):
        detect_drift(ref, cur, DriftConfig(output_columns=["nope"]))


def test_dataset_verdict_follows_drift_share() -> None:
    ref = frame(3000, 0)
    cur = frame(3000, 1, shift=1.0)  # 1 of 3 columns drifts
    assert not detect_drift(ref, cur).drifted
    assert detect_drift(ref, cur, DriftConfig(drift_share=0.3)).drifted


def test_require_significance_off_makes_material_enough() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 120)})
    cur = pd.DataFrame({"x": rng.normal(0.2, 1, 120)})
    strict = detect_drift(ref, cur, DriftConfig(wasserstein_threshold=0.1)).column("x")
    loose = detect_drift(
        ref, cur, DriftConfig(wasserstein_threshold=0.1, require_significance=False)
    ).column("x")
    assert strict.material and not strict.significant and strict.verdict == "warning"
    assert loose.verdict == "drift"


def test_correction_family_and_methods() -> None:
    ref, cur = frame(400, 0), frame(400, 1, shift=0.15)
    holm = detect_drift(ref, cur).columns
    bonf = detect_drift(ref, cur, DriftConfig(correction="bonferroni")).columns
    for h, b in zip(holm, bonf, strict=True):
        assert h.p_value == b.p_value
        assert h.p_value_adjusted is not None and b.p_value_adjusted is not None
        assert h.p_value_adjusted <= b.p_value_adjusted
        assert b.p_value_adjusted == pytest.approx(min(1.0, 3 * (b.p_value or 0)))


def test_columns_selection_and_schema_errors() -> None:
    ref = frame(500, 0).assign(when=pd.Timestamp("2024-01-01"))
    cur = frame(500, 1).assign(when=pd.Timestamp("2025-01-01"))
    assert [c.column for c in detect_drift(ref, cur).columns] == ["age", "income", "city"]
    only = detect_drift(compute_profile(ref), cur, columns=["city", "when"])
    assert [c.column for c in only.columns] == ["city", "when"]
    with pytest.raises(SchemaError) as err:
        detect_drift(ref, cur, columns=["nope"])
    assert err.value.field == "columns"
    with pytest.raises(SchemaError) as err:
        detect_drift(ref, cur.drop(columns=["age"]))
    assert err.value.field == "current"
    with pytest.raises(SchemaError) as err:
        detect_drift(ref, cur.assign(age="old"))
    assert err.value.field == "age"
    with pytest.raises(InvalidInputError):
        detect_drift(ref, cur, columns="age")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError) as err:
        detect_drift(ref, pd.concat([cur, cur[["age"]]], axis=1))
    assert err.value.field == "current.columns"
    with pytest.raises(InvalidInputError) as err:
        detect_drift([1, 2], cur)  # type: ignore[arg-type]
    assert err.value.field == "reference"
    with pytest.raises(InvalidInputError) as err:
        detect_drift(ref, cur.to_dict())  # type: ignore[arg-type]
    assert err.value.field == "current"
    with pytest.raises(InvalidInputError) as err:
        detect_drift(ref, cur, {"alpha": 0.1})  # type: ignore[arg-type]
    assert err.value.field == "config"


def test_window_types_line_up_with_the_reference() -> None:
    ref = pd.DataFrame({"n": np.arange(300) % 7, "flag": np.arange(300) % 3 == 0})
    cur = pd.DataFrame(
        {
            "n": pd.Series(np.arange(300) % 7, dtype=object),  # decoded from JSON
            "flag": pd.Series(np.arange(300) % 3 == 0, dtype="boolean"),
        }
    )
    report = detect_drift(ref, cur)
    assert all(c.statistic == 0.0 and c.verdict == "no_drift" for c in report.columns)


def test_to_dict_is_json_with_the_documented_keys() -> None:
    report = detect_drift(frame(1000, 0), frame(1000, 1, shift=1.0))
    doc = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert {"drifted", "share_material", "columns", "verdict"} <= set(doc)
    for entry in doc["columns"]:
        assert {"column", "test", "statistic", "p_value", "significant", "material"} <= set(entry)
    assert isinstance(report, DriftReport)


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("alpha", 0.0),
        ("alpha", 1.0),
        ("alpha", "0.05"),
        ("alpha", float("nan")),
        ("correction", "fdr"),
        ("ks_method", "fast"),
        ("psi_bins", 1),
        ("psi_bins", 2.5),
        ("psi_bins", True),
        ("psi_epsilon", 0.0),
        ("psi_threshold", -0.1),
        ("wasserstein_threshold", float("inf")),
        ("js_threshold", 1.5),
        ("missing_rate_threshold", -1),
        ("drift_share", 0.0),
        ("drift_share", 1.01),
        ("min_sample_size", 0),
        ("require_significance", 1),
        ("output_columns", "score"),
        ("output_columns", [1]),
        ("max_workers", 0),
    ],
)
def test_bad_config_values_name_the_parameter(field: str, bad: object) -> None:
    with pytest.raises(InvalidInputError) as err:
        DriftConfig(**{field: bad})  # type: ignore[arg-type]
    assert err.value.field == field
    assert field in str(err.value)


def test_thresholds_can_be_switched_off() -> None:
    config = DriftConfig(psi_threshold=None, wasserstein_threshold=None, js_threshold=None)
    report = detect_drift(frame(2000, 0), frame(2000, 1, shift=2.0), config)
    assert not any(c.material for c in report.columns)
    assert all(c.verdict == "warning" for c in report.columns if c.significant)
