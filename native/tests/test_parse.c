#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "edgeprof.h"

static int p(const char *s, int64_t *v) { return ep_parse_int64(s, strlen(s), v); }

int main(void) {
    int64_t v = 0;
    CHECK(p("12345\n", &v) == 0 && v == 12345);
    CHECK(p("   -42  \n", &v) == 0 && v == -42);
    CHECK(p("+7", &v) == 0 && v == 7);
    CHECK(p("9223372036854775807", &v) == 0 && v == INT64_MAX);
    CHECK(p("-9223372036854775808", &v) == 0 && v == INT64_MIN);
    CHECK(p("9223372036854775808", &v) == -ERANGE);
    CHECK(p("99999999999999999999999", &v) == -ERANGE);
    CHECK(p("", &v) == -EINVAL);
    CHECK(p("\n", &v) == -EINVAL);
    CHECK(p("-", &v) == -EINVAL);
    CHECK(p("12a", &v) == -EINVAL);
    CHECK(p("1 2", &v) == -EINVAL);
    CHECK(p("0x10", &v) == -EINVAL);
    CHECK(ep_parse_int64("12\0" "3", 4, &v) == -EINVAL);
    /* Only len bytes are looked at: no NUL terminator needed. */
    CHECK(ep_parse_int64("4567", 2, &v) == 0 && v == 45);

    int64_t pages = 0;
    const char *statm = "12345 678 90 1 0 2 0\n";
    CHECK(ep_parse_statm_resident(statm, strlen(statm), &pages) == 0 && pages == 678);
    CHECK(ep_parse_statm_resident("12345", 5, &pages) == -EINVAL);
    CHECK(ep_parse_statm_resident("12345 x", 7, &pages) == -EINVAL);
    CHECK(ep_parse_statm_resident(" 1 2", 4, &pages) == -EINVAL);

    int64_t kb = 0;
    const char *smaps =
        "00400000-7ffd1000 ---p 00000000 00:00 0 [rollup]\n"
        "Rss:               10240 kB\n"
        "Pss:                8196 kB\n"
        "Pss_Anon:           4000 kB\n";
    CHECK(ep_parse_smaps_pss_kb(smaps, strlen(smaps), &kb) == 0 && kb == 8196);
    const char *nopss = "header\nRss: 10 kB\nPss_Anon: 4 kB\n";
    CHECK(ep_parse_smaps_pss_kb(nopss, strlen(nopss), &kb) == -EINVAL);
    const char *trunc = "header\nPss:   81";
    CHECK(ep_parse_smaps_pss_kb(trunc, strlen(trunc), &kb) == -EINVAL);
    CHECK_DONE();
}
