"""Builds ONNX graphs shaped like torch.onnx.export's output for an nn.Sequential, with onnx.helper
(no PyTorch needed), for the sequential-import and prune tests.

Usage:
  python torch_style_onnx.py cnn MODEL.onnx SIZE [INPUT.pb OUTPUT.pb]
      Conv+BN+Relu+MaxPool, Conv(no bias)+Relu+AveragePool, the Shape/Gather/Unsqueeze/Concat/Reshape
      flatten of x.view(x.size(0), -1), MatMul+Add, Relu, Dropout, Identity, Gemm(transB=1): 10 classes
      from [batch, 1, SIZE, SIZE]. With INPUT/OUTPUT, also writes a random batch of 3 and
      onnxruntime's output for it as TensorProtos.
  python torch_style_onnx.py branch MODEL.onnx
      A residual block (Add of two branches), which is not a chain.
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def constant(name, array):
    return helper.make_node("Constant", [], [name], name=name + "_node", value=numpy_helper.from_array(array, name))


def cnn(size):
    rng = np.random.default_rng(7)
    f = lambda *shape: rng.uniform(-0.5, 0.5, size=shape).astype(np.float32)
    pooled = size // 2 // 2
    features = 6 * pooled * pooled
    inits = [
        numpy_helper.from_array(f(4, 1, 3, 3), "conv1.weight"), numpy_helper.from_array(f(4), "conv1.bias"),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 4).astype(np.float32), "bn.weight"), numpy_helper.from_array(f(4), "bn.bias"),
        numpy_helper.from_array(f(4), "bn.running_mean"), numpy_helper.from_array(rng.uniform(0.5, 2, 4).astype(np.float32), "bn.running_var"),
        numpy_helper.from_array(f(6, 4, 3, 3), "conv2.weight"),
        numpy_helper.from_array(f(features, 16), "fc1.weight_t"), numpy_helper.from_array(f(16), "fc1.bias"),
        numpy_helper.from_array(f(10, 16), "fc2.weight"), numpy_helper.from_array(f(10), "fc2.bias"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["c1"], name="/conv1/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"], ["b1"], name="/bn/BatchNormalization", epsilon=1e-5),
        helper.make_node("Relu", ["b1"], ["r1"], name="/relu1/Relu"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="/pool1/MaxPool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.weight"], ["c2"], name="/conv2/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="/relu2/Relu"),
        helper.make_node("AveragePool", ["r2"], ["p2"], name="/pool2/AveragePool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Shape", ["p2"], ["shape"], name="/Shape"),
        constant("zero", np.array(0, dtype=np.int64)),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], name="/Gather", axis=0),
        constant("axes", np.array([0], dtype=np.int64)),
        helper.make_node("Unsqueeze", ["batch", "axes"], ["batch1"], name="/Unsqueeze"),
        constant("minus_one", np.array([-1], dtype=np.int64)),
        helper.make_node("Concat", ["batch1", "minus_one"], ["target"], name="/Concat", axis=0),
        helper.make_node("Reshape", ["p2", "target"], ["flat"], name="/Reshape"),
        helper.make_node("MatMul", ["flat", "fc1.weight_t"], ["m1"], name="/fc1/MatMul"),
        helper.make_node("Add", ["fc1.bias", "m1"], ["a1"], name="/fc1/Add"),
        helper.make_node("Relu", ["a1"], ["r3"], name="/relu3/Relu"),
        constant("ratio", np.array(0.25, dtype=np.float32)),
        helper.make_node("Dropout", ["r3", "ratio"], ["d1"], name="/dropout/Dropout"),
        helper.make_node("Identity", ["d1"], ["i1"], name="/Identity"),
        helper.make_node("Gemm", ["i1", "fc2.weight", "fc2.bias"], ["logits"], name="/fc2/Gemm", transB=1, alpha=1.0, beta=1.0),
    ]
    graph = helper.make_graph(nodes, "torch_jit", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    return helper.make_model(graph, producer_name="pytorch", opset_imports=[helper.make_opsetid("", 13)])


def branch():
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rng.uniform(-1, 1, (4, 4)).astype(np.float32), "w")]
    nodes = [
        helper.make_node("Gemm", ["x", "w"], ["g"], name="/fc/Gemm", transB=1),
        helper.make_node("Relu", ["g"], ["r"], name="/relu/Relu"),
        helper.make_node("Add", ["g", "r"], ["y"], name="/residual/Add"),
    ]
    graph = helper.make_graph(nodes, "torch_jit", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], inits)
    return helper.make_model(graph, producer_name="pytorch", opset_imports=[helper.make_opsetid("", 13)])


def main():
    kind, path = sys.argv[1], sys.argv[2]
    model = cnn(int(sys.argv[3])) if kind == "cnn" else branch()
    onnx.checker.check_model(model)
    onnx.save(model, path)
    if kind == "cnn" and len(sys.argv) > 5:
        size = int(sys.argv[3])
        x = np.random.default_rng(11).uniform(-1, 1, (3, 1, size, size)).astype(np.float32)
        y = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        with open(sys.argv[4], "wb") as f:
            f.write(numpy_helper.from_array(x, "x").SerializeToString())
        with open(sys.argv[5], "wb") as f:
            f.write(numpy_helper.from_array(y, "logits").SerializeToString())


if __name__ == "__main__":
    main()
