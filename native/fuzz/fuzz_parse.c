/*
 * libFuzzer target for the parsers the sampler runs on every sample (sysfs integers, statm,
 * smaps_rollup). Built with -fsanitize=fuzzer,address,undefined by scripts/fuzz.
 *
 * Besides "no crash, no UB", it checks each accepted integer against strtoll on a
 * NUL-terminated copy: the strict parser may refuse more than strtoll, never disagree with it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edgeprof.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    int64_t v = 0;
    if (ep_parse_int64(buf, size, &v) == 0) {
        char *copy = malloc(size + 1);
        if (!copy) return 0;
        memcpy(copy, buf, size);
        copy[size] = '\0';
        errno = 0;
        long long ref = strtoll(copy, NULL, 10);
        if (errno != 0 || ref != v) abort();
        free(copy);
    }
    int64_t pages = 0;
    if (ep_parse_statm_resident(buf, size, &pages) == 0 && pages < 0) abort();
    int64_t kb = 0;
    if (ep_parse_smaps_pss_kb(buf, size, &kb) == 0 && kb < 0) abort();
    return 0;
}
