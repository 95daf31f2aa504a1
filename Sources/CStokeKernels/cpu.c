#include "CStokeKernels.h"
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALL_FEATURES 0xFFFFFFFFu
#define AVX2_SET (STOKE_CPU_FEATURE_AVX2 | STOKE_CPU_FEATURE_FMA | STOKE_CPU_FEATURE_F16C)
#define AVX512_SET (AVX2_SET | STOKE_CPU_FEATURE_AVX512F | STOKE_CPU_FEATURE_AVX512BW | STOKE_CPU_FEATURE_AVX512VL)

static const char *const level_names[STOKE_CPU_LEVEL_COUNT] = {"portable", "avx2", "avx-vnni", "avx512", "avx512-vnni"};
static const uint32_t level_masks[STOKE_CPU_LEVEL_COUNT] = {
    0, AVX2_SET, AVX2_SET | STOKE_CPU_FEATURE_AVXVNNI, AVX512_SET, ALL_FEATURES,
};

// Probed features (bit 31 marks "probed") and the process restriction (bit 31 marks "read").
static atomic_uint probed = 0;
static atomic_uint process_mask = 0;
// Forcing is per thread, so a test that forces a set never changes what other threads run.
static _Thread_local uint32_t forced_mask = ALL_FEATURES;

#define DONE 0x80000000u

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
static uint64_t xgetbv0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}
#endif

static uint32_t probe_now(void) {
    uint32_t features = 0;
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return 0;
    uint64_t xcr0 = xgetbv0();
    int ymm_ok = (xcr0 & 0x6) == 0x6;              // SSE and AVX state saved by the OS
    int zmm_ok = ymm_ok && (xcr0 & 0xE0) == 0xE0;  // opmask, ZMM0-15 upper halves, ZMM16-31
    if (!ymm_ok) return 0;
    unsigned max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 7) return 0;
    unsigned a7, b7, c7, d7;
    __cpuid_count(7, 0, a7, b7, c7, d7);
    if ((b7 >> 5) & 1) features |= STOKE_CPU_FEATURE_AVX2;
    if (fma) features |= STOKE_CPU_FEATURE_FMA;
    if (f16c) features |= STOKE_CPU_FEATURE_F16C;
    if (zmm_ok) {
        if ((b7 >> 16) & 1) features |= STOKE_CPU_FEATURE_AVX512F;
        if ((b7 >> 30) & 1) features |= STOKE_CPU_FEATURE_AVX512BW;
        if ((b7 >> 31) & 1) features |= STOKE_CPU_FEATURE_AVX512VL;
        if ((c7 >> 11) & 1) features |= STOKE_CPU_FEATURE_AVX512VNNI;
    }
    if (a7 >= 1) {
        unsigned a71, b71, c71, d71;
        __cpuid_count(7, 1, a71, b71, c71, d71);
        if ((a71 >> 4) & 1) features |= STOKE_CPU_FEATURE_AVXVNNI;
    }
    // Every vector path also needs AVX2: without it, keep nothing (the portable set).
    if (!(features & STOKE_CPU_FEATURE_AVX2) || !(features & STOKE_CPU_FEATURE_FMA)) features = 0;
    // The AVX-512 paths use F, BW and VL together; VNNI without them is not used.
    if ((features & AVX512_SET) != AVX512_SET) features &= ~(STOKE_CPU_FEATURE_AVX512F | STOKE_CPU_FEATURE_AVX512BW |
                                                             STOKE_CPU_FEATURE_AVX512VL | STOKE_CPU_FEATURE_AVX512VNNI);
#endif
    return features;
}

uint32_t stoke_cpu_probed_features(void) {
    uint32_t value = atomic_load_explicit(&probed, memory_order_acquire);
    if (!(value & DONE)) {
        value = probe_now() | DONE;
        atomic_store_explicit(&probed, value, memory_order_release);
    }
    return value & ~DONE;
}

int stoke_cpu_parse_level(const char *name) {
    for (int level = 0; level < STOKE_CPU_LEVEL_COUNT; level++)
        if (strcmp(name, level_names[level]) == 0) return level;
    return -1;
}

void stoke_cpu_set_process_level(int level) {
    uint32_t mask = level >= 0 && level < STOKE_CPU_LEVEL_COUNT ? level_masks[level] : ALL_FEATURES;
    atomic_store_explicit(&process_mask, (mask & ~DONE) | DONE, memory_order_release);
}

static uint32_t process_restriction(void) {
    uint32_t value = atomic_load_explicit(&process_mask, memory_order_acquire);
    if (!(value & DONE)) {
        // First use without the CLI having set it: read STOKE_CPU here (test processes, libraries).
        const char *name = getenv("STOKE_CPU");
        int level = -1;
        if (name && *name) {
            level = stoke_cpu_parse_level(name);
            if (level < 0) {
                fprintf(stderr, "STOKE_CPU=%s is not a kernel set; use portable, avx2, avx-vnni, avx512 or avx512-vnni\n", name);
                exit(2);
            }
        }
        uint32_t mask = level >= 0 ? level_masks[level] : ALL_FEATURES;
        value = (mask & ~DONE) | DONE;
        unsigned expected = 0;
        if (!atomic_compare_exchange_strong(&process_mask, &expected, value)) value = expected;
    }
    return value & ~DONE;
}

uint32_t stoke_cpu_features(void) { return stoke_cpu_probed_features() & process_restriction() & forced_mask; }

int stoke_cpu_has(uint32_t features) { return (stoke_cpu_features() & features) == features; }

uint32_t stoke_cpu_level_features(int level) {
    return level >= 0 && level < STOKE_CPU_LEVEL_COUNT ? level_masks[level] : 0;
}

const char *stoke_cpu_level_name(int level) {
    return level >= 0 && level < STOKE_CPU_LEVEL_COUNT ? level_names[level] : "?";
}

/// The best set whose defining features are all in `features` (avx512-vnni needs AVX512VNNI, not every bit).
static stoke_cpu_level best_level(uint32_t features) {
    if ((features & (AVX512_SET | STOKE_CPU_FEATURE_AVX512VNNI)) == (AVX512_SET | STOKE_CPU_FEATURE_AVX512VNNI))
        return STOKE_CPU_AVX512_VNNI;
    if ((features & AVX512_SET) == AVX512_SET) return STOKE_CPU_AVX512;
    if ((features & level_masks[STOKE_CPU_AVX_VNNI]) == level_masks[STOKE_CPU_AVX_VNNI]) return STOKE_CPU_AVX_VNNI;
    if ((features & AVX2_SET) == AVX2_SET) return STOKE_CPU_AVX2;
    return STOKE_CPU_PORTABLE;
}

int stoke_cpu_level_supported(int level) {
    if (level < 0 || level >= STOKE_CPU_LEVEL_COUNT) return 0;
    uint32_t have = stoke_cpu_probed_features() & process_restriction();
    uint32_t need = level == STOKE_CPU_AVX512_VNNI ? (AVX512_SET | STOKE_CPU_FEATURE_AVX512VNNI) : level_masks[level];
    return (have & need) == need;
}

stoke_cpu_level stoke_cpu_probe(void) { return best_level(stoke_cpu_probed_features() & process_restriction()); }

void stoke_cpu_force(int level) {
    forced_mask = level >= 0 && level < STOKE_CPU_LEVEL_COUNT ? level_masks[level] : ALL_FEATURES;
}

stoke_cpu_level stoke_cpu_active(void) { return best_level(stoke_cpu_features()); }
