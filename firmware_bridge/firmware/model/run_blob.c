/* run_blob.c - run a model blob on the host, for tests and for developing the kernels.
 *
 *   ep_model_run [--arena BYTES] [--random N] BLOB < inputs > outputs
 *
 * Reads inputs back to back (ep_model_input_bytes each) from stdin until EOF, or with --random
 * makes N pseudo-random inputs instead, and writes one output per input to stdout. The sizes
 * go to stderr as one line "in=N out=N layers=N arena=N" followed by each layer's op name.
 * Exit 0; 3 when the blob is refused or fails to run ("error CODE: ep_model_strerror line" on
 * stderr); 2 on a usage or I/O error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ep_model.h"

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    if (f == NULL) {
        return NULL;
    }
    for (;;) {
        size_t got;
        if (n == cap) {
            unsigned char *nb;
            cap = cap ? cap * 2 : 65536;
            nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            break;
        }
    }
    fclose(f);
    *len = n;
    return buf;
}


/* Initialise the model and run every input; returns the exit status. */
static int run(const unsigned char *blob, size_t blob_len, unsigned char *arena,
               size_t arena_len, long random_n)
{
    unsigned long seed = 1;
    size_t i;
    ep_model *m;
    int rc = ep_model_init(&m, blob, blob_len, arena, arena_len);
    if (rc != EP_MODEL_OK) {
        fprintf(stderr, "error %d: %s\n", rc, ep_model_strerror(rc));
        return 3;
    }
    fprintf(stderr, "in=%zu out=%zu layers=%zu arena=%zu\n", ep_model_input_bytes(m),
            ep_model_output_bytes(m), ep_model_layer_count(m), ep_model_arena_used(m));
    for (i = 0; i < ep_model_layer_count(m); i++) {
        fprintf(stderr, "%s\n", ep_model_layer_op(m, i));
    }
    for (;;) {
        size_t got;
        if (random_n >= 0) {
            if (random_n-- == 0) {
                break;
            }
            for (i = 0; i < ep_model_input_bytes(m); i++) {
                seed = seed * 1103515245ul + 12345ul;
                ep_model_input(m)[i] = (int8_t)((int)((seed >> 16) & 0xffu) - 128);
            }
            got = ep_model_input_bytes(m);
        } else {
            got = fread(ep_model_input(m), 1, ep_model_input_bytes(m), stdin);
        }
        if (got == 0) {
            break;
        }
        if (got != ep_model_input_bytes(m)) {
            fprintf(stderr, "ep_model_run: short input (%zu bytes)\n", got);
            return 2;
        }
        rc = ep_model_invoke(m, NULL, NULL);
        if (rc != EP_MODEL_OK) {
            fprintf(stderr, "error %d: %s\n", rc, ep_model_strerror(rc));
            return 3;
        }
        if (fwrite(ep_model_output(m), 1, ep_model_output_bytes(m), stdout) !=
            ep_model_output_bytes(m)) {
            return 2;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    size_t arena_len = 8u << 20, blob_len = 0;
    long random_n = -1;
    int a = 1, status;
    unsigned char *blob, *arena;
    while (a + 1 < argc && strncmp(argv[a], "--", 2) == 0) {
        if (strcmp(argv[a], "--arena") == 0) {
            arena_len = (size_t)strtoul(argv[a + 1], NULL, 10);
        } else if (strcmp(argv[a], "--random") == 0) {
            random_n = strtol(argv[a + 1], NULL, 10);
        } else {
            break;
        }
        a += 2;
    }
    if (a + 1 != argc) {
        fprintf(stderr, "usage: ep_model_run [--arena BYTES] [--random N] BLOB < in > out\n");
        return 2;
    }
    blob = slurp(argv[a], &blob_len);
    if (blob == NULL) {
        fprintf(stderr, "ep_model_run: cannot read %s\n", argv[a]);
        return 2;
    }
    /* an exact-size copy, so ASan catches any read past the end of the blob */
    {
        unsigned char *exact = malloc(blob_len ? blob_len : 1);
        if (exact == NULL) {
            free(blob);
            return 2;
        }
        memcpy(exact, blob, blob_len);
        free(blob);
        blob = exact;
    }
    arena = malloc(arena_len ? arena_len : 1);
    if (arena == NULL) {
        free(blob);
        return 2;
    }
    status = run(blob, blob_len, arena, arena_len, random_n);
    free(arena);
    free(blob);
    return status;
}
