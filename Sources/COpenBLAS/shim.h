#ifndef COPENBLAS_SHIM_H
#define COPENBLAS_SHIM_H
#include <cblas.h>

/// OpenBLAS runs its own thread pool; the engine sizes it so loader workers and BLAS share the cores.
static inline void copenblas_set_threads(int n) { openblas_set_num_threads(n); }
static inline int copenblas_get_threads(void) { return openblas_get_num_threads(); }
#endif
