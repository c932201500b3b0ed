/* fuzz_blob.c - libFuzzer target: any bytes as a model blob must be refused cleanly, or
 * initialised and run without a read or write outside the blob and the arena.
 *
 *   CC=clang cmake -S firmware_bridge/firmware -B build-fw-fuzz -DEP_FUZZ=ON
 *   cmake --build build-fw-fuzz --target fuzz_model_blob
 *   build-fw-fuzz/fuzz_model_blob -max_total_time=60 CORPUS_DIR
 *
 * Seed the corpus with real blobs (tests/test_model_blob.py writes them) for deep coverage.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ep_model.h"

#define ARENA_BYTES 4096u /* small: the worst-case work of one invoke grows with it */
#define MAX_WORK_BYTES (64u * 1024u) /* run only small blobs: the work grows with blob x arena */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t arena[ARENA_BYTES];
    uint8_t *blob = malloc(size ? size : 1); /* exact size: ASan sees any overread */
    ep_model *m = NULL;
    if (blob == NULL) {
        return 0;
    }
    memcpy(blob, data, size);
    if (ep_model_init(&m, blob, size, arena, sizeof arena) == EP_MODEL_OK &&
        size < MAX_WORK_BYTES) {
        size_t i;
        for (i = 0; i < ep_model_input_bytes(m); i++) {
            ep_model_input(m)[i] = (int8_t)(i * 37u);
        }
        (void)ep_model_invoke(m, NULL, NULL);
        (void)ep_model_output(m)[0];
    }
    free(blob);
    return 0;
}
