// swift-tools-version: 6.2
import PackageDescription

// Stoke's benchmarks: their own package, so `swift test` at the root never builds the harness.
//
//   cd Benchmarks && swift package benchmark                        # package-benchmark suites
//   swift run -c release --package-path Benchmarks store-ratios     # ratio lines for issue 2's goals
//   swift run -c release --package-path Benchmarks pack-ratios      # image pack vs Pillow (issue 3)
//   swift run -c release --package-path Benchmarks quant-ratios     # INT8 GEMM and models vs onnxruntime (issue 7)
//
// package-benchmark treats every executable target whose folder sits directly in a folder named
// `Benchmarks` as a suite (here `Benchmarks/StoreBenchmarks/`); helpers live under `Support/` and
// `Tools/` so the plugin never mistakes them for suites.

let package = Package(
    name: "StokeBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Stoke", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // MARK: - Shared measurement code

        .target(
            name: "StoreBenchSupport",
            dependencies: [.product(name: "StokeStore", package: "Stoke")],
            path: "Support/StoreBenchSupport"),

        .target(
            name: "LoaderBenchSupport",
            dependencies: [
                "StoreBenchSupport", .product(name: "StokeStore", package: "Stoke"),
                .product(name: "StokeLoader", package: "Stoke"), .product(name: "StokeBench", package: "Stoke"),
            ],
            path: "Support/LoaderBenchSupport"),

        .target(
            name: "PackBenchSupport",
            dependencies: [
                "StoreBenchSupport", .product(name: "StokePack", package: "Stoke"), .product(name: "StokeStore", package: "Stoke"),
            ],
            path: "Support/PackBenchSupport"),

        // MARK: - package-benchmark suites (one executable per suite under Benchmarks/<Suite>/)

        .executableTarget(
            name: "StoreBenchmarks",
            dependencies: [
                "StoreBenchSupport",
                .product(name: "StokeStore", package: "Stoke"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "StoreBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]),

        .executableTarget(
            name: "LoaderBenchmarks",
            dependencies: [
                "LoaderBenchSupport", "StoreBenchSupport", .product(name: "StokeLoader", package: "Stoke"),
                .product(name: "StokeStore", package: "Stoke"), .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "LoaderBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]),

        // MARK: - Ratio reports (plain executables, no harness)

        .executableTarget(
            name: "infer-ratios",
            dependencies: [.product(name: "StokeStore", package: "Stoke"), .product(name: "StokeLoader", package: "Stoke"),
                           .product(name: "StokeEngine", package: "Stoke"), .product(name: "StokeBench", package: "Stoke")],
            path: "Tools/InferRatios"),

        .executableTarget(
            name: "loader-ratios",
            dependencies: ["LoaderBenchSupport", "StoreBenchSupport", .product(name: "StokeLoader", package: "Stoke"),
                           .product(name: "StokeStore", package: "Stoke"), .product(name: "StokeBench", package: "Stoke")],
            path: "Tools/LoaderRatios"),

        .target(name: "EngineBenchKernels", path: "Support/EngineBenchKernels"),
        .target(name: "EngineBenchSupport", dependencies: [.product(name: "StokeEngine", package: "Stoke")], path: "Support/EngineBenchSupport"),

        .executableTarget(
            name: "engine-ratios",
            dependencies: ["EngineBenchKernels", "EngineBenchSupport", .product(name: "StokeEngine", package: "Stoke")],
            path: "Tools/EngineRatios"),

        .executableTarget(
            name: "quant-ratios",
            dependencies: ["EngineBenchKernels", "EngineBenchSupport", .product(name: "StokeEngine", package: "Stoke"),
                           .product(name: "CStokeKernels", package: "Stoke"), .product(name: "StokeBench", package: "Stoke"),
                           .product(name: "StokeLoader", package: "Stoke"), .product(name: "StokeStore", package: "Stoke")],
            path: "Tools/QuantRatios"),

        .executableTarget(
            name: "store-ratios",
            dependencies: ["StoreBenchSupport", .product(name: "StokeStore", package: "Stoke")],
            path: "Tools/StoreRatios"),

        .executableTarget(
            name: "pack-ratios",
            dependencies: ["PackBenchSupport"],
            path: "Tools/PackRatios"),

        .executableTarget(
            name: "train-ratios",
            dependencies: [.product(name: "StokeStore", package: "Stoke"), .product(name: "StokeLoader", package: "Stoke"),
                           .product(name: "StokePack", package: "Stoke"), .product(name: "StokeEngine", package: "Stoke")],
            path: "Tools/TrainRatios"),
    ],
    swiftLanguageModes: [.v6]
)
