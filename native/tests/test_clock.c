/* Calibration: the tick converted to ns must track CLOCK_MONOTONIC_RAW. */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <time.h>

#include "check.h"
#include "edgeprof.h"

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void check_source(int source) {
    ep_clock_info info;
    int rc = ep_clock_init(source, 50, &info);
    CHECK(rc == 0);
    if (rc != 0) return;
    CHECK(info.hz > 1e6);
    /* What calibration measured about itself, with no bound on how long anything took: a
     * loaded machine may make reads slower, never zero or negative. */
    CHECK(info.resolution_ns > 0 && isfinite(info.resolution_ns));
    CHECK(info.read_cost_ns > 0 && isfinite(info.read_cost_ns));
    CHECK(info.calib_ppm >= 0 && isfinite(info.calib_ppm));
    /* Ticks converted to ns track CLOCK_MONOTONIC_RAW. Each tick is bracketed by two reference
     * reads, so a preemption between them widens the bracket instead of failing the check;
     * the tolerance is the calibration's own disagreement (calib_ppm) plus 0.1 % and one
     * resolution step, never a bound on how long the sleep took. */
    int64_t n0a = ep_monoraw_ns();
    uint64_t t0 = ep_tick();
    int64_t n0b = ep_monoraw_ns();
    sleep_ms(200);
    int64_t n1a = ep_monoraw_ns();
    uint64_t t1 = ep_tick();
    int64_t n1b = ep_monoraw_ns();
    double tick_ns = (double)(t1 - t0) / info.hz * 1e9;
    double lo = (double)(n1a - n0b), hi = (double)(n1b - n0a);
    double tol = (1e-3 + 2e-6 * info.calib_ppm) * hi + info.resolution_ns;
    CHECK(lo > 0);
    CHECK(tick_ns >= lo - tol && tick_ns <= hi + tol);
    /* Monotonic over a tight loop. */
    uint64_t prev = ep_tick();
    int mono = 1;
    for (int i = 0; i < 100000; i++) {
        uint64_t t = ep_tick();
        mono &= t >= prev;
        prev = t;
    }
    CHECK(mono);
    CHECK(ep_tick_end() >= prev);
}

int main(void) {
    check_source(EP_CLOCK_MONORAW);
    ep_clock_info info;
    CHECK(ep_clock_get(&info) == 0 && info.source == EP_CLOCK_MONORAW);
    CHECK(fabs(info.hz - 1e9) / 1e9 < 1e-3); /* MONORAW ticks are ns */
    check_source(EP_CLOCK_AUTO);
    CHECK(ep_clock_get(&info) == 0 && info.source != 0);
    CHECK(ep_clock_init(99, 10, &info) < 0);
    CHECK_DONE();
}
