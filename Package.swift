// swift-tools-version: 6.2
import PackageDescription

// MARK: - Public API

let products: [Product] = [
    .executable(name: "stoke", targets: ["stoke"]),
    .library(name: "StokeStore", targets: ["StokeStore"]),
    .library(name: "StokePack", targets: ["StokePack"]),
    .library(name: "StokeLoader", targets: ["StokeLoader"]),
    .library(name: "StokeBench", targets: ["StokeBench"]),
    .library(name: "StokeEngine", targets: ["StokeEngine"]),
    // The C kernels themselves, for benchmarks that time a kernel without the engine around it.
    .library(name: "CStokeKernels", targets: ["CStokeKernels"]),
    // libstoke.so: the C ABI (Sources/StokeC/include/stoke.h) for C programs and the Python package.
    .library(name: "stoke-c", type: .dynamic, targets: ["StokeC"]),
]

// MARK: - C boundary: system libraries (module.modulemap + shim.h) and Stoke's own C kernels

let cTargets: [Target] = [
    .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
    .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
    .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
    .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
    .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),
    .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
    .target(name: "CStokeKernels"),
]

// MARK: - Stages

let swiftTargets: [Target] = [
    .target(name: "StokeStore", dependencies: ["CHDF5", "CLZ4", "CZlib", "CStokeKernels"]),
    .target(name: "StokePack", dependencies: ["StokeStore", "CTurboJPEG", "CPNG"]),
    .target(name: "StokeLoader", dependencies: ["StokeStore", "CStokeKernels"]),
    .target(name: "StokeBench", dependencies: ["StokeStore", "StokeLoader", "StokeEngine"]),
    .target(name: "StokeEngine", dependencies: ["COpenBLAS", "CStokeKernels", "StokeStore"]),
    .executableTarget(
        name: "stoke",
        dependencies: [
            "StokeStore", "StokePack", "StokeLoader", "StokeBench", "StokeEngine",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
    .target(name: "StokeTestSupport", path: "Tests/StokeTestSupport"),
    .target(name: "StokeC", dependencies: ["StokeStore", "StokePack", "StokeLoader", "StokeEngine"], exclude: ["include"]),
    .testTarget(name: "StokeStoreTests", dependencies: ["StokeStore", "CStokeKernels", "StokeTestSupport"]),
    .testTarget(name: "StokeKernelTests", dependencies: ["CStokeKernels"]),
    .testTarget(name: "StokeLoaderTests", dependencies: ["StokeLoader", "StokeStore"]),
    .testTarget(name: "StokeBenchTests", dependencies: ["StokeBench", "StokeLoader", "StokeStore"]),
    .testTarget(name: "StokePackTests", dependencies: ["StokePack", "StokeStore", "StokeTestSupport"]),
    .testTarget(name: "StokeEngineTests", dependencies: ["StokeEngine", "StokeStore", "StokeTestSupport"], exclude: ["Resources"]),
    .testTarget(name: "StokeCLITests", dependencies: ["stoke", "StokeEngine", "StokeTestSupport"]),
    // Soak: 100 loader epochs (flat RSS) and 1,000 open/close cycles (no fd or thread leaks), in its own process.
    .executableTarget(name: "stoke-soak", dependencies: ["StokeStore", "StokeLoader"], path: "Tests/StokeSoak"),
    .testTarget(name: "StokeSoakTests", dependencies: ["stoke-soak", "StokeTestSupport"]),
]

let package = Package(
    name: "Stoke",
    platforms: [.macOS(.v15)],
    products: products,
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: cTargets + swiftTargets,
    swiftLanguageModes: [.v6]
)

// One settings loop over every Swift target: strict memory safety makes every unsafe spot greppable.
for target in package.targets where [.regular, .executable].contains(target.type) && !target.name.hasPrefix("C") {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .strictMemorySafety(),
        .enableUpcomingFeature("MemberImportVisibility"),
    ]
}
