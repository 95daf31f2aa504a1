#ifndef CHDF5_SHIM_H
#define CHDF5_SHIM_H
// Thin wrappers for HDF5 macros Swift cannot import (they expand to H5OPEN + a global).
#include <hdf5.h>

static inline hid_t chdf5_native_int8(void)    { return H5T_NATIVE_INT8; }
static inline hid_t chdf5_native_uint8(void)   { return H5T_NATIVE_UINT8; }
static inline hid_t chdf5_native_int16(void)   { return H5T_NATIVE_INT16; }
static inline hid_t chdf5_native_uint16(void)  { return H5T_NATIVE_UINT16; }
static inline hid_t chdf5_native_int32(void)   { return H5T_NATIVE_INT32; }
static inline hid_t chdf5_native_uint32(void)  { return H5T_NATIVE_UINT32; }
static inline hid_t chdf5_native_int64(void)   { return H5T_NATIVE_INT64; }
static inline hid_t chdf5_native_uint64(void)  { return H5T_NATIVE_UINT64; }
static inline hid_t chdf5_native_float(void)   { return H5T_NATIVE_FLOAT; }
static inline hid_t chdf5_native_double(void)  { return H5T_NATIVE_DOUBLE; }
static inline hid_t chdf5_ieee_f16le(void)     {
    // IEEE half precision, as h5py and numpy's float16 store it.
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0) return t;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
        H5Tclose(t); return -1;
    }
    return t;
}
static inline hid_t chdf5_c_s1(void)           { return H5T_C_S1; }

static inline hid_t chdf5_plist_file_create(void)    { return H5P_FILE_CREATE; }
static inline hid_t chdf5_plist_file_access(void)    { return H5P_FILE_ACCESS; }
static inline hid_t chdf5_plist_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t chdf5_plist_dataset_access(void) { return H5P_DATASET_ACCESS; }
static inline hid_t chdf5_plist_link_create(void)    { return H5P_LINK_CREATE; }

static inline unsigned chdf5_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned chdf5_acc_rdwr(void)   { return H5F_ACC_RDWR; }
static inline unsigned chdf5_acc_trunc(void)  { return H5F_ACC_TRUNC; }
static inline unsigned chdf5_acc_excl(void)   { return H5F_ACC_EXCL; }

static inline hsize_t chdf5_unlimited(void) { return H5S_UNLIMITED; }
static inline haddr_t chdf5_haddr_undef(void) { return HADDR_UNDEF; }

/// Object header address (1.10 API: H5O_info_t.addr).
static inline herr_t chdf5_object_address(hid_t obj, haddr_t *addr) {
    H5O_info_t info;
    herr_t status = H5Oget_info2(obj, &info, H5O_INFO_BASIC);
    if (status >= 0) *addr = info.addr;
    return status;
}

/// Turn off the library's automatic printing of the error stack: Stoke collects it into typed errors.
static inline void chdf5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
#endif
