/*
 * stoke.h: Stoke's C ABI (libstoke): stores, the loader, the store writer and the inference engine,
 * for programs and languages without a Swift toolchain (the Python package `stoke` binds it with ctypes).
 *
 * Conventions
 * - Every object is an opaque handle created by a `*_open` function and ended by its `*_close`
 *   function (NULL is accepted and ignored). A handle is not thread-safe: use each from one thread at
 *   a time (the loader's worker threads are internal to it). Different handles may be used on
 *   different threads at once.
 * - Functions return an `int` status: STOKE_OK (0) on success, STOKE_END (1) where an iteration ends,
 *   a negative STOKE_ERR_* code on failure. After a failure, stoke_last_error() returns the one-line
 *   message (the same text the `stoke` CLI prints after "error: "), for the calling thread.
 * - Strings are NUL-terminated UTF-8. Strings returned through `const char **` are owned by the handle
 *   they came from and stay valid until it is closed. Strings returned through `char **` are owned
 *   by the caller and freed with stoke_free_string().
 * - Options are JSON objects (keys named below); an unknown key or a value of the wrong type is an
 *   error naming the key. NULL or "" means all defaults.
 * - Shapes are int64 arrays of at most STOKE_MAX_DIMS entries; sizes are in bytes unless said
 *   otherwise; times are in seconds.
 */
#ifndef STOKE_H
#define STOKE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. */
#define STOKE_OK 0
/** The loader's epoch has no more batches (not an error; nothing is returned). */
#define STOKE_END 1
/** A caller's request does not fit: a bad option, an unknown field, a NULL handle, a state of another loader. */
#define STOKE_ERR_ARGUMENT (-1)
/** A system call failed on a file (no such file, permission denied, disk full…). */
#define STOKE_ERR_IO (-2)
/** The file is not a store Stoke reads, or is corrupt (bad chunk, checksum, index, HDF5 error). */
#define STOKE_ERR_STORE (-3)
/** A valid HDF5 feature or data type Stoke does not handle. */
#define STOKE_ERR_UNSUPPORTED (-4)
/** The engine refused the model or the input (unsupported operator, bad shape…). */
#define STOKE_ERR_ENGINE (-5)
/** A size the request or the file declares is over the memory budget (STOKE_MEMORY_BUDGET). */
#define STOKE_ERR_MEMORY (-6)
/** Anything else (an internal error); the message says what. */
#define STOKE_ERR_INTERNAL (-7)

/** Most axes a shape may have (batch axis included). */
#define STOKE_MAX_DIMS 16

/* Element types (stoke's dtype names in comments). */
#define STOKE_DTYPE_U8 0  /* u8, 1 byte */
#define STOKE_DTYPE_I8 1  /* i8, 1 byte */
#define STOKE_DTYPE_U16 2 /* u16, 2 bytes */
#define STOKE_DTYPE_I16 3 /* i16, 2 bytes */
#define STOKE_DTYPE_I32 4 /* i32, 4 bytes */
#define STOKE_DTYPE_I64 5 /* i64, 8 bytes */
#define STOKE_DTYPE_F16 6 /* f16, 2 bytes (IEEE half) */
#define STOKE_DTYPE_F32 7 /* f32, 4 bytes */
#define STOKE_DTYPE_F64 8 /* f64, 8 bytes */
#define STOKE_DTYPE_U32 9 /* u32, 4 bytes */

typedef struct stoke_store stoke_store;
typedef struct stoke_loader stoke_loader;
typedef struct stoke_batch stoke_batch;
typedef struct stoke_writer stoke_writer;
typedef struct stoke_session stoke_session;

/* ---- Errors and strings ---- */

/** The message of the last failed call on this thread ("" if none failed yet). Valid until the next
 *  failing call on this thread. */
const char *stoke_last_error(void);
/** Stoke's version, e.g. "0.1.0" (static storage). */
const char *stoke_version(void);
/** Frees a string returned through `char **`. */
void stoke_free_string(char *string);

/* ---- Stores ---- */

/** Opens a store (any HDF5 file whose root datasets share axis 0) for reading. */
int stoke_store_open(const char *path, stoke_store **out);
/** Samples in the store (axis-0 length shared by its fields). */
int stoke_store_samples(const stoke_store *store, int64_t *samples);
/** Number of fields (root datasets). */
int stoke_store_field_count(const stoke_store *store, int32_t *count);
/** Field `index` (0-based): its name, element type (STOKE_DTYPE_*), rows, and the shape of one sample
 *  (`*ndim` axes written to `sample_shape`, which must hold STOKE_MAX_DIMS values; 0 axes for a scalar
 *  per sample). Any output pointer may be NULL. */
int stoke_store_field(const stoke_store *store, int32_t index, const char **name, int32_t *dtype, int64_t *rows,
                      int32_t *ndim, int64_t *sample_shape);
/** The store's root string attribute `name` (a JSON document such as "recipe" or "provenance"), or
 *  NULL in `*value` when it has none. */
int stoke_store_attribute(const stoke_store *store, const char *name, const char **value);
void stoke_store_close(stoke_store *store);

/* ---- Loader ---- */

/**
 * Opens a loader on a store (the loader keeps the store open; the handle may be closed) and starts its
 * worker threads. Options (JSON object, all optional; defaults as Stoke's LoaderOptions):
 *   "batch_size": samples per batch (256)
 *   "fields": ["image", "label"] (every field of the store)
 *   "order": "sequential" | "random" | "chunk-shuffle" | "chunk-shuffle:W" (chunk-shuffle, window 4)
 *   "seed": integer 0…2^64−1, as a number or a decimal string (0)
 *   "rank", "world": this process's rank and the number of ranks (0, 1)
 *   "workers": decoding threads (the CPU count); "prefetch": batches in flight at most (4)
 *   "drop_last": drop the last partial batch; with several ranks, trim instead of padding (false)
 *   "normalization": {"image": {"mean": [...], "std": [...], "scale": 0.00392}} per field, on the 0–1
 *       scale (u8 values are multiplied by 1/255 first unless "scale" says otherwise); the field becomes f32
 *   "use_store_normalization": apply the store's `normalization` attribute (true)
 *   "output_types": {"image": "f32"} (u8 → f32 without scaling; the only conversion)
 *   "cache_bytes": decoded-chunk cache budget in bytes (sized for the order)
 *   "pin_buffers": mlock batch buffers (true); "register_with_cuda": cudaHostRegister them when
 *       libcudart loads (true)
 */
int stoke_loader_open(const stoke_store *store, const char *options_json, stoke_loader **out);
/** Samples in the loader's store. */
int stoke_loader_samples(const stoke_loader *loader, int64_t *samples);
/** Batches of `epoch` for this rank. */
int stoke_loader_batch_count(const stoke_loader *loader, int64_t epoch, int64_t *count);
/** Fields as they appear in batches: count, then per field its name, element type after normalization,
 *  and sample shape (as stoke_store_field). */
int stoke_loader_field_count(const stoke_loader *loader, int32_t *count);
int stoke_loader_field(const stoke_loader *loader, int32_t index, const char **name, int32_t *dtype, int32_t *ndim,
                       int64_t *sample_shape);
/** Whether batch buffers are page-locked (1) or not (0), and why not (owned by the loader). */
int stoke_loader_pinning(const stoke_loader *loader, int32_t *pinned, const char **reason);
/**
 * Starts epoch `epoch` at batch `start_batch` (0 ≤ start_batch ≤ batch count; earlier batches are not
 * read), stopping the epoch in progress. stoke_loader_next starts epoch 0 at batch 0 by itself when
 * no epoch was started.
 */
int stoke_loader_start(stoke_loader *loader, int64_t epoch, int64_t start_batch);
/**
 * The next batch of the current epoch in `*batch`, or STOKE_END (and NULL) at its end. The batch is a
 * lease on one of the loader's pinned buffers: its memory stays valid and unchanged until
 * stoke_batch_release, after which the loader refills it. Hold at most a few at once (the pool has
 * prefetch + 2 buffers; holding them all stalls the loader). A worker's error (a corrupt chunk naming
 * store, field and chunk) is returned here. Blocks until the batch is ready.
 */
int stoke_loader_next(stoke_loader *loader, stoke_batch **batch);
/** Stops the epoch in progress (in-flight work is joined, prefetched batches are dropped) and keeps the
 *  position: the next stoke_loader_next resumes the same epoch at the next batch not yet taken. */
int stoke_loader_stop(stoke_loader *loader);
/** Where the loader is: the current epoch and the number of batches of it taken so far. */
int stoke_loader_position(const stoke_loader *loader, int64_t *epoch, int64_t *next_batch);
/**
 * The loader's state as a JSON document (caller frees with stoke_free_string): the position (epoch,
 * next batch) and what makes it meaningful (seed, order, batch size, drop_last, rank, world, samples).
 */
int stoke_loader_state(const stoke_loader *loader, char **state_json);
/** Restores a state from stoke_loader_state: checks it was made with the same seed, order, batch size,
 *  drop_last, rank, world and sample count (an error names the first that differs) and starts the
 *  saved epoch at the saved batch. */
int stoke_loader_restore(stoke_loader *loader, const char *state_json);
/**
 * Time and bytes of the current epoch so far, as JSON (caller frees): batches, samples, wait_seconds
 * (the caller's time blocked in stoke_loader_next), wall_seconds, decode_seconds, gather_seconds,
 * read_seconds, worker_idle_seconds, batch_bytes, decoded_bytes, stored_bytes_read, chunk_decodes,
 * redecodes, cache_hits.
 */
int stoke_loader_stats(const stoke_loader *loader, char **stats_json);
/** Stops the current epoch and joins every worker thread; the handle stays valid (next fails). Batches
 *  still held stay valid until released. Safe to call twice. */
int stoke_loader_shutdown(stoke_loader *loader);
/** Shuts down (joins the workers) and frees the handle. Batches still held stay valid until released. */
void stoke_loader_close(stoke_loader *loader);

/* ---- Batches (leases from stoke_loader_next) ---- */

/** Samples in the batch (the last batch of an epoch may be smaller) and its position in the epoch. */
int stoke_batch_info(const stoke_batch *batch, int64_t *count, int64_t *number);
/**
 * Field `index` (in the loader's field order) of the batch: a pointer to `count` samples in C order
 * inside the pinned buffer (no copy), its element type, and its shape with the batch axis first
 * (`*ndim` axes, at most STOKE_MAX_DIMS). Valid until the batch is released.
 */
int stoke_batch_field(const stoke_batch *batch, int32_t index, const void **data, int32_t *dtype, int32_t *ndim,
                      int64_t *shape);
/** The global store indices of the batch's samples (`count` int64 values in the pinned buffer). */
int stoke_batch_indices(const stoke_batch *batch, const int64_t **indices);
/** Every address of the batch in one call (for bindings that convert each batch): the data of each field,
 *  in the loader's field order, then the indices; `capacity` must be at least fields + 1. Also the
 *  sample count. */
int stoke_batch_addresses(const stoke_batch *batch, int32_t capacity, const void **addresses, int64_t *count);
/** Returns the buffer to the loader; the pointers handed out for it become invalid. */
void stoke_batch_release(stoke_batch *batch);

/* ---- Writer: a store from arrays in memory ---- */

/**
 * Creates a store at `path`, written under a temporary name and renamed there only by
 * stoke_writer_finish. Options (JSON object):
 *   "fields": [{"name": "image", "dtype": "u8", "shape": [1, 28, 28]}, ...] (required; shape of one
 *       sample, [] for a scalar; dtype one of u8 i8 u16 i16 i32 i64 f16 f32 f64)
 *   "codec": "lz4" | "lz4-shuffle" | "deflate" | "deflate:N" | "none" ("lz4")
 *   "chunk_samples": samples per chunk, or "chunk_bytes": about this many bytes per chunk (2 MiB)
 *   "checksum": Fletcher-32 per chunk (true); "workers": compression threads (CPU count)
 *   "overwrite": replace an existing store at `path` (false)
 */
int stoke_writer_open(const char *path, const char *options_json, stoke_writer **out);
/** Appends whole samples (`bytes` a multiple of the field's sample size, little-endian, C order). */
int stoke_writer_append(stoke_writer *writer, const char *field, const void *data, int64_t bytes);
/** Records a JSON document as a root attribute of the store (written by finish). */
int stoke_writer_set_metadata(stoke_writer *writer, const char *name, const char *json);
/** Writes the rest, the schema and the chunk index, and renames the store into place. Every field must
 *  have the same number of samples. On error nothing appears at the path. */
int stoke_writer_finish(stoke_writer *writer, int64_t *samples);
/** Frees the writer; a writer not finished removes its temporary file (nothing appears at the path). */
void stoke_writer_close(stoke_writer *writer);

/**
 * Packs array files as `stoke pack` does: options as stoke_writer_open's except "fields", which here
 * is [{"name": "image", "source": "images.npy", "shape": [1, 28, 28]}, ...] with sources NPY or IDX
 * files (told apart by content; "shape" optional, same element count per sample).
 */
int stoke_pack_files(const char *path, const char *options_json, int64_t *samples);

/* ---- Engine session ---- */

/** Loads a model (ONNX, or a Stoke model file: told apart by content) and makes a session running it
 *  with `threads` threads (≤ 0: 1). */
int stoke_session_open(const char *model_path, int32_t threads, stoke_session **out);
/** The model's inputs and outputs: counts, then names (owned by the session). */
int stoke_session_io(const stoke_session *session, int32_t *inputs, int32_t *outputs);
int stoke_session_input_name(const stoke_session *session, int32_t index, const char **name);
int stoke_session_output_name(const stoke_session *session, int32_t index, const char **name);
/**
 * Runs the model on an f32 batch read in place: `data` holds the elements of `shape` (`ndim` axes,
 * batch axis first) for input `input` (NULL: the model's first input). The f32 output `output` (NULL:
 * the first) is returned as a pointer into the session's memory, valid until the next run or close,
 * with its shape (`out_shape` holds STOKE_MAX_DIMS values).
 */
int stoke_session_run(stoke_session *session, const char *input, const float *data, int32_t ndim, const int64_t *shape,
                      const char *output, const float **out_data, int32_t *out_ndim, int64_t *out_shape);
/** As stoke_session_run, with the input taken straight from field `field_index` of a loader batch
 *  (which must be f32: normalize u8 images in the loader). */
int stoke_session_run_batch(stoke_session *session, const char *input, const stoke_batch *batch, int32_t field_index,
                            const char *output, const float **out_data, int32_t *out_ndim, int64_t *out_shape);
/** Samples run and seconds spent in runs since the session opened; samples/s is their ratio. */
int stoke_session_stats(const stoke_session *session, int64_t *samples, double *seconds);
void stoke_session_close(stoke_session *session);

#ifdef __cplusplus
}
#endif

#endif /* STOKE_H */
