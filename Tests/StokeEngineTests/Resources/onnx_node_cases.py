"""Writes the ONNX backend node test cases (onnx.backend.test.case.node) to a directory.

The onnx wheel ships only the model-level suites as data; node cases are generated from the
Python case definitions. Layout matches the shipped suites:
    OUT/node/<case>/model.onnx, test_data_set_<i>/{input,output}_<j>.pb, tolerance.txt
Usage: python onnx_node_cases.py OUT_DIR
"""
import os
import sys
import warnings

import onnx
from onnx import numpy_helper

warnings.filterwarnings("ignore")


def main() -> None:
    out = os.path.join(sys.argv[1], "node")
    from onnx.backend.test.case import node

    count = 0
    for case in node.collect_testcases(None):
        if case.model is None:
            continue
        graph = case.model.graph
        # Only plain tensor inputs/outputs: sequences, maps and optionals are out of scope.
        if any(not v.type.HasField("tensor_type") for v in list(graph.input) + list(graph.output)):
            continue
        case_dir = os.path.join(out, case.name)
        os.makedirs(case_dir, exist_ok=True)
        with open(os.path.join(case_dir, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        with open(os.path.join(case_dir, "tolerance.txt"), "w") as f:
            f.write(f"{case.rtol} {case.atol}\n")
        for i, (inputs, outputs) in enumerate(case.data_sets):
            data_dir = os.path.join(case_dir, f"test_data_set_{i}")
            os.makedirs(data_dir, exist_ok=True)
            for kind, values, infos in (("input", inputs, graph.input), ("output", outputs, graph.output)):
                for j, value in enumerate(values):
                    if isinstance(value, onnx.TensorProto):
                        proto = value
                    else:
                        proto = numpy_helper.from_array(value, infos[j].name)
                    with open(os.path.join(data_dir, f"{kind}_{j}.pb"), "wb") as f:
                        f.write(proto.SerializeToString())
        count += 1
    print(f"wrote {count} node cases to {out}")


if __name__ == "__main__":
    main()
