#include "CStokeKernels.h"
#include <stdatomic.h>

static atomic_int probed_level = -1;
// Forcing is per thread, so a test that forces a level never changes what other threads run.
static _Thread_local int forced_level = -1;

static stoke_cpu_level probe_now(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512f")) {
        return STOKE_CPU_AVX512_VNNI;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return STOKE_CPU_AVX2;
#endif
    return STOKE_CPU_PORTABLE;
}

stoke_cpu_level stoke_cpu_probe(void) {
    int level = atomic_load_explicit(&probed_level, memory_order_acquire);
    if (level < 0) {
        level = (int)probe_now();
        atomic_store_explicit(&probed_level, level, memory_order_release);
    }
    return (stoke_cpu_level)level;
}

void stoke_cpu_force(int level) {
    int best = (int)stoke_cpu_probe();
    if (level > best) level = best;
    forced_level = level;
}

stoke_cpu_level stoke_cpu_active(void) {
    int forced = forced_level;
    return forced >= 0 ? (stoke_cpu_level)forced : stoke_cpu_probe();
}
