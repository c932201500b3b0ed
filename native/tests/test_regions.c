#include <errno.h>
#include <stdlib.h>

#include "check.h"
#include "edgeprof.h"

int main(void) {
    ep_clock_init(EP_CLOCK_AUTO, 10, NULL);
    ep_regions *r = ep_regions_new(3, 0);
    CHECK(r != NULL);
    CHECK(!ep_regions_has_counters(r));
    CHECK(ep_region_end(r) == -EINVAL); /* end without begin */
    CHECK(ep_regions_unmatched(r) == 1);
    CHECK(ep_region_begin(r) == 0);
    CHECK(ep_region_begin(r) == -EBUSY); /* nested begin refused */
    volatile double x = 0;
    for (int i = 0; i < 100000; i++) x += i;
    CHECK(ep_region_end(r) == 0);
    ep_regions_activate(r);
    ep_mark_begin();
    ep_mark_end();
    ep_mark_begin();
    ep_mark_end();
    CHECK(ep_regions_count(r) == 3);
    ep_mark_begin(); /* full: dropped, and its end swallowed quietly */
    ep_mark_end();
    CHECK(ep_regions_dropped(r) == 1);
    CHECK(ep_regions_unmatched(r) == 2);
    uint64_t b[4], e[4], cy[4], in[4];
    CHECK(ep_regions_copy(r, b, e, cy, in, 4) == 3);
    CHECK(e[0] > b[0] && b[1] >= e[0] && e[1] >= b[1] && b[2] >= e[1]);
    CHECK(cy[0] == 0 && in[0] == 0); /* no counters: zeros, never garbage */
    ep_regions_reset(r);
    CHECK(ep_regions_count(r) == 0 && ep_regions_dropped(r) == 0);
    ep_regions_free(r); /* deactivates */
    ep_mark_begin();    /* must be a no-op, not a use-after-free */
    ep_mark_end();

    /* Counters: either they work and count, or the reason is given. */
    ep_regions *c = ep_regions_new(2, 1);
    CHECK(c != NULL);
    if (ep_regions_has_counters(c)) {
        ep_region_begin(c);
        for (int i = 0; i < 100000; i++) x += i;
        ep_region_end(c);
        CHECK(ep_regions_copy(c, b, e, cy, in, 2) == 1);
        CHECK(cy[0] > 10000 && in[0] > 100000);
    } else {
        const char *why = ep_regions_counters_reason(c);
        CHECK(why != NULL && why[0] != '\0');
        printf("counters unavailable: %s\n", why);
    }
    ep_regions_free(c);
    CHECK(ep_regions_new(0, 0) == NULL);
    CHECK_DONE();
}
