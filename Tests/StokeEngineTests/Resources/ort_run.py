"""Runs an ONNX model in onnxruntime on one input TensorProto and writes the first output.

Usage: python ort_run.py MODEL.onnx INPUT.pb OUTPUT.pb
"""
import sys

import onnx
import onnxruntime as ort
from onnx import numpy_helper


def main() -> None:
    model_path, input_path, output_path = sys.argv[1:4]
    onnx.checker.check_model(onnx.load(model_path))
    tensor = onnx.TensorProto()
    with open(input_path, "rb") as f:
        tensor.ParseFromString(f.read())
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    output = session.run(None, {name: numpy_helper.to_array(tensor)})[0]
    with open(output_path, "wb") as f:
        f.write(numpy_helper.from_array(output, session.get_outputs()[0].name).SerializeToString())


if __name__ == "__main__":
    main()
