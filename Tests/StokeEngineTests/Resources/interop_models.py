"""Builds reference models with onnx.helper and records onnxruntime's outputs for them.

Each model is written as OUT/interop/<name>/{model.onnx, test_data_set_0/input_0.pb,
output_0.pb, tolerance.txt}, the layout of the ONNX backend test data, so Stoke's tests compare
against onnxruntime exactly as they compare against the conformance suites.

Usage: python interop_models.py OUT_DIR
(Speed against onnxruntime is measured by Benchmarks' engine-ratios, not by the tests.)
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(20261128)


def weight(name, *shape, scale=None):
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    scale = scale if scale is not None else (2.0 / fan_in) ** 0.5
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def make_model(name, nodes, inits, inp, out, opset=17):
    graph = helper.make_graph(nodes, name, [inp], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="stoke-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def mlp():
    nodes, inits = [], []
    sizes = [784, 512, 256, 10]
    x = "input"
    for i in range(3):
        inits += [weight(f"fc{i}.weight", sizes[i + 1], sizes[i]), weight(f"fc{i}.bias", sizes[i + 1], scale=0.1)]
        y = f"fc{i}"
        nodes.append(helper.make_node("Gemm", [x, f"fc{i}.weight", f"fc{i}.bias"], [y], transB=1, name=f"fc{i}"))
        if i < 2:
            nodes.append(helper.make_node("Relu", [y], [f"relu{i}"], name=f"relu{i}"))
            y = f"relu{i}"
        x = y
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 784])
    out = helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", 10])
    return make_model("mlp", nodes, inits, inp, out), (64, 784)


def cnn():
    """Two 3x3 convs + pools + two FC, with BatchNorm and a PyTorch-style dynamic flatten."""
    nodes, inits = [], []
    inits += [weight("conv1.weight", 16, 1, 3, 3), weight("conv1.bias", 16, scale=0.1)]
    nodes.append(helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["c1"], pads=[1, 1, 1, 1], name="conv1"))
    inits += [numpy_helper.from_array(rng.uniform(0.5, 1.5, 16).astype(np.float32), f"bn1.{k}") for k in ("scale",)]
    inits += [numpy_helper.from_array((rng.standard_normal(16) * 0.1).astype(np.float32), f"bn1.{k}") for k in ("bias", "mean")]
    inits += [numpy_helper.from_array(rng.uniform(0.5, 2.0, 16).astype(np.float32), "bn1.var")]
    nodes.append(helper.make_node("BatchNormalization", ["c1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"], ["b1"], epsilon=1e-5, name="bn1"))
    nodes.append(helper.make_node("Relu", ["b1"], ["r1"], name="relu1"))
    nodes.append(helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"))
    inits += [weight("conv2.weight", 32, 16, 3, 3), weight("conv2.bias", 32, scale=0.1)]
    nodes.append(helper.make_node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], pads=[1, 1, 1, 1], name="conv2"))
    nodes.append(helper.make_node("Relu", ["c2"], ["r2"], name="relu2"))
    nodes.append(helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2], name="pool2"))
    # x.view(x.size(0), -1) as PyTorch exports it: Shape -> Gather -> Unsqueeze -> Concat -> Reshape.
    inits += [numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
              numpy_helper.from_array(np.array([0], dtype=np.int64), "axes0"),
              numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus1")]
    nodes += [helper.make_node("Shape", ["p2"], ["shape"], name="shape"),
              helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0, name="gather"),
              helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"], name="unsqueeze"),
              helper.make_node("Concat", ["n1", "minus1"], ["newshape"], axis=0, name="concat"),
              helper.make_node("Reshape", ["p2", "newshape"], ["flat"], name="reshape")]
    inits += [weight("fc1.weight", 128, 32 * 7 * 7), weight("fc1.bias", 128, scale=0.1)]
    nodes.append(helper.make_node("Gemm", ["flat", "fc1.weight", "fc1.bias"], ["f1"], transB=1, name="fc1"))
    nodes.append(helper.make_node("Relu", ["f1"], ["r3"], name="relu3"))
    inits += [weight("fc2.weight", 10, 128), weight("fc2.bias", 10, scale=0.1)]
    nodes.append(helper.make_node("Gemm", ["r3", "fc2.weight", "fc2.bias"], ["logits"], transB=1, name="fc2"))
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 28, 28])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])
    return make_model("cnn", nodes, inits, inp, out), (16, 1, 28, 28)


def mixed():
    """Layout and elementwise operators chained the way exported transformers use them."""
    nodes, inits = [], []
    inits += [weight("w", 24, 24)]
    inits += [numpy_helper.from_array(np.array([0, 0, 0, 2, 0, 0, 0, 1], dtype=np.int64), "pads"),
              numpy_helper.from_array(np.array([1], dtype=np.int64), "s_start"),
              numpy_helper.from_array(np.array([100], dtype=np.int64), "s_end"),
              numpy_helper.from_array(np.array([3], dtype=np.int64), "s_axis"),
              numpy_helper.from_array(np.array([-1], dtype=np.int64), "rm_axes"),
              numpy_helper.from_array(np.array([0.5], dtype=np.float32), "half")]
    nodes += [helper.make_node("MatMul", ["input", "w"], ["mm"], name="mm"),               # [b, 4, 6, 24]
              helper.make_node("Gelu", ["mm"], ["g"], name="gelu", domain=""),
              helper.make_node("Transpose", ["g"], ["t"], perm=[0, 2, 1, 3], name="transpose"),  # [b, 6, 4, 24]
              helper.make_node("Pad", ["t", "pads"], ["p"], mode="reflect", name="pad"),          # [b, 6, 4, 27]
              helper.make_node("Slice", ["p", "s_start", "s_end", "s_axis"], ["s"], name="slice"),
              helper.make_node("Concat", ["s", "t"], ["cat"], axis=3, name="concat"),
              helper.make_node("Mul", ["cat", "half"], ["m"], name="mul"),
              helper.make_node("Softmax", ["m"], ["sm"], axis=1, name="softmax"),
              helper.make_node("ReduceMean", ["sm", "rm_axes"], ["rm"], keepdims=1, name="reducemean"),
              helper.make_node("Sigmoid", ["rm"], ["out"], name="sigmoid")]
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4, 6, 24])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 6, 4, 1])
    # Gelu is a default-domain op from opset 20.
    return make_model("mixed", nodes, inits, inp, out, opset=20), (3, 4, 6, 24)


def lrn():
    """AlexNet/ZFNet-style Caffe-era block: Conv -> Relu -> LRN -> MaxPool, then a second LRN of size 3 (opset 9)."""
    nodes, inits = [], []
    inits += [weight("conv1.weight", 8, 3, 3, 3), weight("conv1.bias", 8, scale=0.1)]
    nodes.append(helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["c1"], pads=[1, 1, 1, 1], name="conv1"))
    nodes.append(helper.make_node("Relu", ["c1"], ["r1"], name="relu1"))
    nodes.append(helper.make_node("LRN", ["r1"], ["n1"], size=5, alpha=1e-4, beta=0.75, bias=2.0, name="norm1"))
    nodes.append(helper.make_node("MaxPool", ["n1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], name="pool1"))
    inits += [weight("conv2.weight", 16, 8, 3, 3)]
    nodes.append(helper.make_node("Conv", ["p1", "conv2.weight"], ["c2"], name="conv2"))
    nodes.append(helper.make_node("LRN", ["c2"], ["out"], size=3, alpha=0.5, beta=0.6, bias=1.0, name="norm2"))
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 16, 5, 5])
    return make_model("lrn", nodes, inits, inp, out, opset=9), (2, 3, 16, 16)


def squeezenet():
    """SqueezeNet 1.0 as Caffe2 exports it (opset 9): Conv/Relu, MaxPool with ceil-mode end pads, Fire
    modules (squeeze 1x1, expand 1x1 and 3x3, Concat), Dropout with its mask output, conv10 to 1,000
    classes, GlobalAveragePool and Softmax; biases made by ConstantOfShape. Input 96x96 to stay quick."""
    nodes, inits = [], []

    def bias(name, count):
        inits.append(numpy_helper.from_array(np.array([count], dtype=np.int64), name + ".shape"))
        nodes.append(helper.make_node("ConstantOfShape", [name + ".shape"], [name],
                                      value=helper.make_tensor("value", TensorProto.FLOAT, [1], [0.01]), name=name + ".fill"))
        return name

    def conv(x, cin, cout, kernel, name, stride=1, pad=0):
        inits.append(weight(name + ".weight", cout, cin, kernel, kernel))
        nodes.append(helper.make_node("Conv", [x, name + ".weight", bias(name + ".bias", cout)], [name], kernel_shape=[kernel, kernel],
                                      strides=[stride, stride], pads=[pad] * 4, name=name))
        nodes.append(helper.make_node("Relu", [name], [name + "_relu"], name=name + "_relu"))
        return name + "_relu"

    def fire(x, cin, squeeze, expand, name):
        s = conv(x, cin, squeeze, 1, name + "/squeeze1x1")
        e1, e3 = conv(s, squeeze, expand, 1, name + "/expand1x1"), conv(s, squeeze, expand, 3, name + "/expand3x3", pad=1)
        nodes.append(helper.make_node("Concat", [e1, e3], [name + "/concat"], axis=1, name=name + "/concat"))
        return name + "/concat"

    def pool(x, name, pads=(0, 0, 0, 0)):
        nodes.append(helper.make_node("MaxPool", [x], [name], kernel_shape=[3, 3], strides=[2, 2], pads=list(pads), name=name))
        return name

    x = pool(conv("input", 3, 96, 7, "conv1", stride=2), "pool1")
    for name, cin, squeeze, expand in (("fire2", 96, 16, 64), ("fire3", 128, 16, 64), ("fire4", 128, 32, 128)):
        x = fire(x, cin, squeeze, expand, name)
    x = pool(x, "pool4", pads=(0, 0, 1, 1))
    for name, cin, squeeze, expand in (("fire5", 256, 32, 128), ("fire6", 256, 48, 192), ("fire7", 384, 48, 192), ("fire8", 384, 64, 256)):
        x = fire(x, cin, squeeze, expand, name)
    x = fire(pool(x, "pool8"), 512, 64, 256, "fire9")
    nodes.append(helper.make_node("Dropout", [x], ["fire9/dropout", "fire9/dropout_mask"], ratio=0.5, name="drop9"))
    x = conv("fire9/dropout", 512, 1000, 1, "conv10")
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool10"], name="pool10"))
    nodes.append(helper.make_node("Softmax", ["pool10"], ["softmaxout_1"], name="softmax"))
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 96, 96])
    out = helper.make_tensor_value_info("softmaxout_1", TensorProto.FLOAT, [1, 1000, 1, 1])
    return make_model("squeezenet", nodes, inits, inp, out, opset=9), (1, 3, 96, 96)


def session(model, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def write_case(out_dir, name, model, shape):
    case_dir = os.path.join(out_dir, "interop", name)
    data_dir = os.path.join(case_dir, "test_data_set_0")
    os.makedirs(data_dir, exist_ok=True)
    x = rng.standard_normal(shape).astype(np.float32)
    y = session(model, 1).run(None, {"input": x})[0]
    onnx.save(model, os.path.join(case_dir, "model.onnx"))
    with open(os.path.join(data_dir, "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x, "input").SerializeToString())
    with open(os.path.join(data_dir, "output_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(y, model.graph.output[0].name).SerializeToString())
    with open(os.path.join(case_dir, "tolerance.txt"), "w") as f:
        f.write("1e-4 1e-5\n")


def main():
    out = sys.argv[1]
    for name, (model, shape) in (("mlp", mlp()), ("cnn", cnn()), ("mixed", mixed()), ("lrn", lrn()), ("squeezenet", squeezenet())):
        write_case(out, name, model, shape)
    print(f"wrote interop cases to {out}/interop (onnx {onnx.__version__}, onnxruntime {ort.__version__})")


if __name__ == "__main__":
    main()
