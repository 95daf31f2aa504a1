"""Quantizes an FP32 ONNX model with onnxruntime's quantize_static (QDQ format, per-channel int8
weights, uint8 activations, MinMax calibration on the given inputs) and runs the result.

reduce_range=True keeps the weights 7-bit ([-64, 64]): onnxruntime's u8s8 kernel on CPUs without
VNNI (vpmaddubsw) saturates 8-bit weights but is exact for these, so Stoke (exact everywhere) and
onnxruntime compute the same products on every CPU and the comparison stays meaningful.

Usage: python ort_quantize_static.py FP32.onnx CALIBRATION.pb INPUT.pb QDQ_OUT.onnx OUTPUT_OUT.pb
CALIBRATION.pb holds a batch of calibration inputs; INPUT.pb the batch to run.
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static


def read(path: str) -> np.ndarray:
    tensor = onnx.TensorProto()
    with open(path, "rb") as f:
        tensor.ParseFromString(f.read())
    return numpy_helper.to_array(tensor)


class Batches(CalibrationDataReader):
    def __init__(self, name: str, data: np.ndarray) -> None:
        self.items = iter([{name: data[i:i + 16]} for i in range(0, len(data), 16)])

    def get_next(self):
        return next(self.items, None)


def main() -> None:
    fp32, calibration, input_path, qdq, output_path = sys.argv[1:6]
    name = onnx.load(fp32).graph.input[0].name
    quantize_static(fp32, qdq, Batches(name, read(calibration)), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True)
    session = ort.InferenceSession(qdq, providers=["CPUExecutionProvider"])
    output = session.run(None, {name: read(input_path)})[0]
    with open(output_path, "wb") as f:
        f.write(numpy_helper.from_array(output, session.get_outputs()[0].name).SerializeToString())


if __name__ == "__main__":
    main()
