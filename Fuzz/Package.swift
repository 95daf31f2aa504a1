// swift-tools-version: 6.2
import PackageDescription

// libFuzzer targets for Stoke's readers, in a package of their own so the main build is untouched.
// Build and run with ../scripts/fuzz (it passes -sanitize=fuzzer,address; see README.md here).
let package = Package(
    name: "StokeFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "Stoke", path: "..")],
    targets: [
        .executableTarget(
            name: "stoke-fuzz",
            dependencies: [
                .product(name: "StokeStore", package: "Stoke"),
                .product(name: "StokePack", package: "Stoke"),
                .product(name: "StokeEngine", package: "Stoke"),
            ],
            // libFuzzer's driver is called from `main` below; no top-level code.
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
    ],
    swiftLanguageModes: [.v6]
)
