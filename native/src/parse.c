/*
 * Parsers for the few text formats the sampler reads. Strict on purpose: a sysfs file that
 * holds anything but a number becomes NaN and an error count, never a wrong number.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "edgeprof.h"

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int ep_parse_int64(const char *buf, size_t len, int64_t *out) {
    size_t i = 0;
    while (i < len && is_space(buf[i])) i++;
    int neg = 0;
    if (i < len && (buf[i] == '-' || buf[i] == '+')) neg = buf[i++] == '-';
    size_t start = i;
    uint64_t v = 0;
    const uint64_t limit = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
    while (i < len && buf[i] >= '0' && buf[i] <= '9') {
        uint64_t d = (uint64_t)(buf[i] - '0');
        if (v > (limit - d) / 10u) return -ERANGE;
        v = v * 10u + d;
        i++;
    }
    if (i == start) return -EINVAL;
    while (i < len && is_space(buf[i])) i++;
    if (i != len) return -EINVAL;
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)v;
    else
        *out = (int64_t)v;
    return 0;
}

/* statm: "size resident shared text lib data dt\n" */
int ep_parse_statm_resident(const char *buf, size_t len, int64_t *pages) {
    size_t i = 0;
    while (i < len && buf[i] >= '0' && buf[i] <= '9') i++;
    if (i == 0 || i >= len || buf[i] != ' ') return -EINVAL;
    size_t start = ++i;
    while (i < len && buf[i] >= '0' && buf[i] <= '9') i++;
    if (i == start || (i < len && buf[i] != ' ' && buf[i] != '\n')) return -EINVAL;
    return ep_parse_int64(buf + start, i - start, pages);
}

/* smaps_rollup: a header line, then "Name:   <n> kB" lines; we want "Pss:". */
int ep_parse_smaps_pss_kb(const char *buf, size_t len, int64_t *kb) {
    static const char key[] = "\nPss:";
    const size_t klen = sizeof key - 1;
    for (size_t i = 0; i + klen <= len; i++) {
        if (memcmp(buf + i, key, klen) != 0) continue;
        size_t j = i + klen;
        while (j < len && buf[j] == ' ') j++;
        size_t start = j;
        while (j < len && buf[j] >= '0' && buf[j] <= '9') j++;
        if (j == start) return -EINVAL;
        if (len - j < 3 || memcmp(buf + j, " kB", 3) != 0) return -EINVAL;
        return ep_parse_int64(buf + start, j - start, kb);
    }
    return -EINVAL;
}
