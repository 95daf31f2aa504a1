// StokeEngine: the FP32 inference engine.
//
// Flow:
//   bytes ──ONNXDecoder (ONNX/*, bounds-checked protobuf)──▶ Graph
//   .h5   ──SequentialModel.load (Native/ModelFile.swift, via StokeStore's ArrayFile)──▶ Graph
//         ──GraphPasses (Passes/*: sort, fold constants, fold BatchNorm, fuse ReLU, fuse a 2x2
//           MaxPool into its Conv, drop dead nodes)──▶ Model
//   Model + input shapes ──ExecutionPlan (Runtime/*: shape inference, shape-arithmetic folding,
//         kernels bound to slots, one arena with liveness-based reuse)──▶ steps run by Session
//
// Kernels (Kernels/*) are closures over slot indices, planned per operator by OperatorRegistry;
// the arithmetic lives in CStokeKernels (engine_f32.c, sgemm_avx512.c, sgemm_prepacked.c,
// pool_fast.c) and OpenBLAS. With Stoke's AVX-512 GEMM, constant weights (Gemm/MatMul B, Conv
// filters) are packed into kernel panels once at plan time (Kernels/PrepackedGemm.swift). Unsafe
// pointer code is confined to Runtime/TensorStorage.swift, Runtime/SlotTable.swift, Kernels/* and
// the output views in Session.swift.
//
// Public API in brief:
//   let model = try Model.load(path: "model.onnx")             // ONNX or a Stoke .h5 model file, by content;
//                                                              // or Model.load(onnx:), load(onnxBytes:), Model(graph:opset:)
//   let context = try ExecutionContext.fromEnvironment(threads: 2) // threads, GEMM backend, conv policy, kernel set
//   let session = Session(model: model, context: context)      // or Session(model:threads:): .default with N threads
//   let outputs = try session.run(["input": tensor])           // [String: Tensor], copies the outputs
//   try session.run(input: "input", shape: [n, 784], data: span) { outputs in
//       try outputs.withFloats("logits") { span in ... }       // zero-copy in and out
//   }
//   session.profile(_:repeats:), session.costs(inputShapes:), session.memoryPlan(inputShapes:)
//   SequentialModel(layers:sampleShape:seed:) → .model(), .onnx(), .save(to:metadata:)
//   SequentialModel.load(path:) / loadWithMetadata(path:): HDF5 model files (Native/ModelFile.swift:
//     weights as float32 datasets named like PyTorch's state dict, layer spec + metadata as JSON attributes)
//   NPY.decode / NPY.encode, Tensor.decodeONNX, ONNXExport.serialize
