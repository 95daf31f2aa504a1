import Testing
import CStokeKernels

@Test func cpuProbeReturnsAKnownLevel() {
    let level = stoke_cpu_probe()
    #expect([STOKE_CPU_PORTABLE, STOKE_CPU_AVX2, STOKE_CPU_AVX512_VNNI].contains(level))
}
