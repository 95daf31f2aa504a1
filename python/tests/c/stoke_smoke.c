/* A C program against stoke.h and libstoke: writes a store from memory, opens and describes it, iterates
 * a shuffled loader checking every row against its global index, saves and restores the loader state,
 * and checks that a bad path fails with STOKE_ERR_IO and a message naming it. Exit status 0 on success.
 * Usage: stoke_smoke STORE_PATH */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stoke.h"

#define CHECK(call)                                                                                  \
    do {                                                                                             \
        int status_ = (call);                                                                        \
        if (status_ != STOKE_OK) {                                                                   \
            fprintf(stderr, "%s:%d: %s returned %d: %s\n", __FILE__, __LINE__, #call, status_,       \
                    stoke_last_error());                                                             \
            exit(1);                                                                                 \
        }                                                                                            \
    } while (0)
#define EXPECT(condition)                                                                            \
    do {                                                                                             \
        if (!(condition)) {                                                                          \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #condition);                 \
            exit(1);                                                                                 \
        }                                                                                            \
    } while (0)

enum { SAMPLES = 100, PIXELS = 16 };

static int64_t first_indices[4][32];

/* Reads one epoch, checks each row, and records batch `b`'s indices into first_indices[b]. */
static int64_t read_epoch(stoke_loader *loader, int record) {
    int64_t seen = 0;
    for (;;) {
        stoke_batch *batch = NULL;
        int status = stoke_loader_next(loader, &batch);
        if (status == STOKE_END) break;
        CHECK(status);
        int64_t count = 0, number = 0;
        CHECK(stoke_batch_info(batch, &count, &number));
        const void *image = NULL, *label = NULL;
        int32_t dtype = -1, ndim = 0;
        int64_t shape[STOKE_MAX_DIMS];
        CHECK(stoke_batch_field(batch, 0, &image, &dtype, &ndim, shape));
        EXPECT(dtype == STOKE_DTYPE_U8 && ndim == 4 && shape[0] == count && shape[1] == 1 && shape[3] == 4);
        CHECK(stoke_batch_field(batch, 1, &label, &dtype, &ndim, shape));
        EXPECT(dtype == STOKE_DTYPE_I64 && ndim == 1 && shape[0] == count);
        const int64_t *indices = NULL;
        CHECK(stoke_batch_indices(batch, &indices));
        for (int64_t row = 0; row < count; row++) {
            EXPECT(((const int64_t *)label)[row] == indices[row]);
            EXPECT(((const uint8_t *)image)[row * PIXELS + 3] == (uint8_t)(indices[row] * 7 + 3));
            if (record && number < 4) first_indices[number][row] = indices[row];
        }
        seen += count;
        stoke_batch_release(batch);
    }
    return seen;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s STORE_PATH\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];

    /* Write a store from arrays in memory. */
    stoke_writer *writer = NULL;
    CHECK(stoke_writer_open(path,
                            "{\"fields\": [{\"name\": \"image\", \"dtype\": \"u8\", \"shape\": [1, 4, 4]},"
                            " {\"name\": \"label\", \"dtype\": \"i64\", \"shape\": []}],"
                            " \"chunk_samples\": 16, \"overwrite\": true}",
                            &writer));
    uint8_t images[SAMPLES * PIXELS];
    int64_t labels[SAMPLES];
    for (int i = 0; i < SAMPLES; i++) {
        labels[i] = i;
        for (int p = 0; p < PIXELS; p++) images[i * PIXELS + p] = (uint8_t)(i * 7 + p);
    }
    CHECK(stoke_writer_append(writer, "image", images, sizeof images));
    CHECK(stoke_writer_append(writer, "label", labels, sizeof labels));
    int64_t written = 0;
    CHECK(stoke_writer_finish(writer, &written));
    stoke_writer_close(writer);
    EXPECT(written == SAMPLES);

    /* Open and describe it. */
    stoke_store *store = NULL;
    CHECK(stoke_store_open(path, &store));
    int64_t samples = 0;
    int32_t fields = 0;
    CHECK(stoke_store_samples(store, &samples));
    CHECK(stoke_store_field_count(store, &fields));
    EXPECT(samples == SAMPLES && fields == 2);
    for (int32_t index = 0; index < fields; index++) {
        const char *name = NULL;
        int32_t dtype = -1, ndim = -1;
        int64_t rows = 0, shape[STOKE_MAX_DIMS];
        CHECK(stoke_store_field(store, index, &name, &dtype, &rows, &ndim, shape));
        EXPECT(rows == SAMPLES);
        if (strcmp(name, "image") == 0) EXPECT(dtype == STOKE_DTYPE_U8 && ndim == 3 && shape[0] == 1 && shape[2] == 4);
        else EXPECT(strcmp(name, "label") == 0 && dtype == STOKE_DTYPE_I64 && ndim == 0);
    }

    /* A shuffled loader: every sample once per epoch, rows matching their indices. */
    stoke_loader *loader = NULL;
    CHECK(stoke_loader_open(store,
                            "{\"batch_size\": 32, \"fields\": [\"image\", \"label\"], \"order\": \"random\","
                            " \"seed\": 7, \"workers\": 2, \"prefetch\": 2}",
                            &loader));
    stoke_store_close(store); /* the loader keeps the store open */
    int64_t batches = 0;
    CHECK(stoke_loader_batch_count(loader, 0, &batches));
    EXPECT(batches == 4);
    EXPECT(read_epoch(loader, 1) == SAMPLES);

    /* Save the state after one batch of epoch 0, read on, restore, and get the same second batch. */
    CHECK(stoke_loader_start(loader, 0, 0));
    stoke_batch *batch = NULL;
    CHECK(stoke_loader_next(loader, &batch));
    stoke_batch_release(batch);
    char *state = NULL;
    CHECK(stoke_loader_state(loader, &state));
    EXPECT(read_epoch(loader, 0) == SAMPLES - 32);
    CHECK(stoke_loader_restore(loader, state));
    stoke_free_string(state);
    CHECK(stoke_loader_next(loader, &batch));
    const int64_t *indices = NULL;
    CHECK(stoke_batch_indices(batch, &indices));
    EXPECT(memcmp(indices, first_indices[1], 32 * sizeof(int64_t)) == 0);
    stoke_batch_release(batch);

    /* A bad option and a bad path fail with their codes and messages. */
    stoke_loader *bad = NULL;
    store = NULL;
    CHECK(stoke_store_open(path, &store));
    EXPECT(stoke_loader_open(store, "{\"batch_sise\": 3}", &bad) == STOKE_ERR_ARGUMENT && bad == NULL);
    EXPECT(strstr(stoke_last_error(), "batch_sise") != NULL);
    stoke_store_close(store);
    store = NULL;
    EXPECT(stoke_store_open("/nonexistent/stoke.h5", &store) == STOKE_ERR_IO && store == NULL);
    EXPECT(strstr(stoke_last_error(), "/nonexistent/stoke.h5") != NULL);

    stoke_loader_close(loader);
    printf("stoke_smoke: ok (stoke %s)\n", stoke_version());
    return 0;
}
