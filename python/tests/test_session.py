"""stoke.Session: an ONNX model run by Stoke's engine on arrays and loader batches."""
import numpy as np
import pytest

import stoke

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def linear_model(path, weights, bias):
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["flat"], axis=1),
         helper.make_node("Gemm", ["flat", "w", "b"], ["logits"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_session_runs_arrays_and_loader_batches(tmp_path, store):
    rng = np.random.default_rng(3)
    weights = rng.standard_normal((48, 10)).astype(np.float32)
    bias = rng.standard_normal(10).astype(np.float32)
    model = tmp_path / "linear.onnx"
    linear_model(model, weights, bias)
    session = stoke.Session(model, threads=1)
    assert session.inputs == ["x"] and session.outputs == ["logits"]
    x = rng.standard_normal((16, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(session.run(x), x.reshape(16, 48) @ weights + bias, rtol=1e-4, atol=1e-4)

    path, images, _ = store
    loader = stoke.Loader(path, batch_size=100, order="sequential", workers=1,
                          normalization={"image": {"mean": [0.5], "std": [0.5]}})
    for batch in loader:
        logits = session.run(batch)  # the f32 field, read in place from the pinned buffer
        expected = ((images[batch["index"]].reshape(-1, 48) / 255.0 - 0.5) / 0.5) @ weights + bias
        np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-3)
    samples, seconds = session.stats
    assert samples == 16 + 1000 and seconds > 0 and session.samples_per_second > 0


def test_session_errors(tmp_path, store):
    with pytest.raises(stoke.StokeError) as missing:
        stoke.Session(tmp_path / "none.onnx")
    assert missing.value.kind == "io" and "none.onnx" in str(missing.value)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07\x12\xff\xff\xff\xff\x0f")
    with pytest.raises(stoke.StokeError) as bad:
        stoke.Session(garbage)
    assert bad.value.kind == "engine"
    model = tmp_path / "linear.onnx"
    linear_model(model, np.zeros((48, 10), np.float32), np.zeros(10, np.float32))
    session = stoke.Session(model)
    with pytest.raises(stoke.StokeError, match="axis"):
        session.run(np.zeros((2, 3, 4, 5), np.float32))
    path, _, _ = store
    with pytest.raises(stoke.StokeError, match="no f32 field"):
        session.run(next(iter(stoke.Loader(path, batch_size=10, workers=1))))
