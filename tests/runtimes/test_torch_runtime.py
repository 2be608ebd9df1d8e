"""The PyTorch runtime: TorchScript, or a weights-only state dict plus a module factory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lockgate.errors import InvalidInputError, ModelLoadError
from lockgate.runtimes import detect_flavor, flavor_for_object
from lockgate.runtimes.check import check_runtime
from lockgate.runtimes.torch import TorchRuntime, resolve_factory

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.extras

FACTORY = f"{__name__}:make_net"


def make_net(hidden: int = 8, classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, classes)
    )


def _frame(n: int = 64) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    return pd.DataFrame(rng.normal(size=(n, 4)).astype(np.float32), columns=list("abcd"))


def _forward(module: torch.nn.Module, frame: pd.DataFrame) -> np.ndarray:
    with torch.no_grad():
        return module(torch.tensor(frame.to_numpy(dtype=np.float32))).numpy()


def _loaded(path: Path, **options: object) -> TorchRuntime:
    rt = TorchRuntime(path, options=options)
    rt.load()
    return rt


def test_check_runtime_scripted_regressor() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))
    frame = _frame()
    expected = _forward(net, frame).reshape(-1)
    check_runtime(TorchRuntime, net, frame, expected=expected, atol=1e-6)


def test_check_runtime_classifier_returns_argmax_labels() -> None:
    net = make_net()
    frame = _frame()
    expected = _forward(net, frame).argmax(axis=1)
    check_runtime(TorchRuntime, net, frame, expected=expected, options={"task": "classification"})


def test_classification_options_classes_and_proba(tmp_path: Path) -> None:
    net = make_net()
    frame = _frame()
    path = TorchRuntime.save(net, tmp_path)
    rt = _loaded(path, task="classification", classes=["a", "b", "c"])
    logits = _forward(net, frame)
    np.testing.assert_array_equal(rt.predict(frame), np.array(["a", "b", "c"])[logits.argmax(1)])
    proba = rt.predict_proba(frame)
    assert proba is not None
    np.testing.assert_allclose(proba, torch.softmax(torch.from_numpy(logits), 1).numpy(), atol=1e-6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    raw = _loaded(path)  # regression by default: the raw output, no probabilities
    np.testing.assert_allclose(raw.predict(frame), logits, atol=1e-6)
    assert raw.predict_proba(frame) is None
    meta = rt.metadata()
    assert meta["format"] == "torchscript" and meta["task"] == "classification"
    assert meta["torch"] == TorchRuntime.framework_versions()["torch"]


def test_state_dict_with_module_factory(tmp_path: Path) -> None:
    net = make_net(hidden=5)
    path = tmp_path / "weights.pt"
    torch.save(net.state_dict(), path)
    assert TorchRuntime.detect(path) and detect_flavor(path) == "torch"
    assert not TorchRuntime.requires_trust(path)
    with pytest.raises(ModelLoadError, match=r"module='package\.module:factory'"):
        _loaded(path)
    rt = _loaded(path, module=FACTORY, module_kwargs={"hidden": 5})
    frame = _frame()
    np.testing.assert_allclose(rt.predict(frame), _forward(net, frame), atol=1e-6)
    assert rt.metadata()["format"] == "state_dict"
    with pytest.raises(ModelLoadError, match=r"weights\.pt"):  # wrong shapes for the weights
        _loaded(path, module=FACTORY)


def test_check_runtime_state_dict_artifact_path(tmp_path: Path) -> None:
    net = make_net()
    path = tmp_path / "weights.pt"
    torch.save(net.state_dict(), path)
    frame = _frame(20)
    check_runtime(
        TorchRuntime,
        path,
        frame,
        expected=_forward(net, frame),
        options={"module": FACTORY},
        atol=1e-6,
    )


def test_a_pickled_module_is_refused_by_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "whole.pt"
    torch.save(make_net(), path)  # pickles the module class: not weights-only
    with pytest.raises(ModelLoadError, match=r"whole\.pt"):
        _loaded(path, module=FACTORY)


@pytest.mark.parametrize(
    "spec",
    ["os.system", "os:system(1)", "../evil:make", "a b:c", "pkg.mod:", ":factory", 42],
)
def test_factory_import_path_is_validated(spec: object) -> None:
    with pytest.raises(InvalidInputError, match=r"options\.module"):
        resolve_factory(spec)  # type: ignore[arg-type]


def test_factory_must_exist_and_be_callable() -> None:
    with pytest.raises(InvalidInputError, match="importable"):
        resolve_factory("no_such_package_xyz.mod:factory")
    with pytest.raises(InvalidInputError, match="callable"):
        resolve_factory(f"{__name__}:FACTORY")


def test_per_row_tensor_column_is_stacked(tmp_path: Path) -> None:
    class Pool(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(1, 2))

    images = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    rt = _loaded(TorchRuntime.save(Pool(), tmp_path))
    out = rt.predict(pd.DataFrame({"image": list(images)}))
    np.testing.assert_allclose(out, images.mean(axis=(1, 2)))


def test_save_detect_and_errors(tmp_path: Path) -> None:
    net = make_net()
    path = TorchRuntime.save(net, tmp_path)
    assert path == tmp_path / "model.pt"
    assert TorchRuntime.detect(path) and TorchRuntime.detect(tmp_path)
    assert flavor_for_object(net) == "torch"
    with pytest.raises(InvalidInputError, match=r"torch\.nn\.Module"):
        TorchRuntime.save(object(), tmp_path)
    with pytest.raises(InvalidInputError, match=r"options\.task"):
        _loaded(path, task="ranking")


def test_unscriptable_module_gets_a_clear_error(tmp_path: Path) -> None:
    class Dynamic(torch.nn.Module):
        def forward(self, x):  # type: ignore[no-untyped-def]  # no annotations: not scriptable
            return {k: x for k in range(int(x.shape[0]))}.get(0, lambda: x)

    with pytest.raises(InvalidInputError, match=r"torch\.jit\.trace"):
        TorchRuntime.save(Dynamic(), tmp_path)


def test_corrupt_file_is_a_model_load_error(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"not a zip")
    assert not TorchRuntime.detect(path)
    with pytest.raises(ModelLoadError, match=r"torch.*model\.pt"):
        _loaded(path)
