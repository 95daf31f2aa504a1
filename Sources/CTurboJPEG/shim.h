#ifndef CTURBOJPEG_SHIM_H
#define CTURBOJPEG_SHIM_H
#include <turbojpeg.h>

/* Enum and flag values as plain ints for Swift. */
static inline int ctj_pf_rgb(void) { return TJPF_RGB; }
static inline int ctj_pf_gray(void) { return TJPF_GRAY; }
static inline int ctj_cs_gray(void) { return TJCS_GRAY; }
/* Warnings (a truncated or corrupt stream) are errors for Stoke; cap progressive scans (a known DoS). */
static inline int ctj_strict_flags(void) { return TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS; }
#endif
