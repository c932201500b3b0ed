/* The sampler thread on real files in a temp directory: values, units, wraparound, errors. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "edgeprof.h"

static char dir[] = "/tmp/ep_sampler_XXXXXX";

static void put(const char *name, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    /* In place, fixed width: the sampler keeps its fd open. */
    char buf[32];
    snprintf(buf, sizeof buf, "%20s\n", text);
    if (pwrite(fd, buf, strlen(buf), 0) < 0) perror("pwrite");
    close(fd);
}

static const char *path(const char *name) {
    static char buf[8][256];
    static int k = 0;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Drain into ticks/vals from index n until a drained sample's first column equals want (or the
 * buffer is full); returns the new count. Waiting is bounded only so that a dead thread ends
 * the test: the checks never depend on how long it took. */
static size_t drain_until(ep_sampler *s, uint64_t *ticks, double *vals, size_t cap, size_t n,
                          double want) {
    for (int spins = 0; spins < 300000 && n < cap; spins++) {
        size_t got = ep_sampler_drain(s, ticks + n, vals + n * 5, cap - n);
        for (size_t i = n; i < n + got; i++) {
            if (vals[i * 5] == want) return n + got;
        }
        n += got;
        sleep_ms(1);
    }
    return n;
}

int main(void) {
    if (!mkdtemp(dir)) return 2;
    ep_clock_init(EP_CLOCK_AUTO, 10, NULL);
    put("power1_input", "1500000");   /* uW */
    put("in1_input", "5000");         /* mV */
    put("curr1_input", "400");        /* mA */
    put("energy_uj", "999000");       /* near the wrap */
    put("garbage", "12abc");
    char statm_path[64];
    snprintf(statm_path, sizeof statm_path, "/proc/%d/statm", (int)getpid());

    ep_sampler *s = ep_sampler_new(1000.0, 4096);
    CHECK(s != NULL);
    CHECK(ep_sampler_add(s, EP_CH_VALUE, path("power1_input"), NULL, 1e-6, 0) == 0);
    CHECK(ep_sampler_add(s, EP_CH_PRODUCT, path("in1_input"), path("curr1_input"), 1e-6, 0) == 1);
    CHECK(ep_sampler_add(s, EP_CH_COUNTER, path("energy_uj"), NULL, 1e-6, 1000000.0) == 2);
    CHECK(ep_sampler_add(s, EP_CH_STATM_RSS, statm_path, NULL, 1.0, 0) == 3);
    CHECK(ep_sampler_add(s, EP_CH_VALUE, path("garbage"), NULL, 1.0, 0) == 4);
    CHECK(ep_sampler_add(s, EP_CH_VALUE, path("missing"), NULL, 1.0, 0) == -ENOENT);
    CHECK(ep_sampler_add(s, EP_CH_COUNTER, path("energy_uj"), NULL, 1.0, 0) == -EINVAL);
    CHECK(ep_sampler_add(s, 42, path("energy_uj"), NULL, 1.0, 0) == -EINVAL);
    CHECK(ep_sampler_ncols(s) == 5);

    uint64_t tick;
    double now[5];
    CHECK(ep_sampler_read_now(s, &tick, now) == -EIO); /* the garbage column */
    CHECK(fabs(now[0] - 1.5) < 1e-12);
    CHECK(fabs(now[1] - 2.0) < 1e-12);
    CHECK(now[2] == 0.0);
    CHECK(now[3] > 1e5); /* this process has some resident memory */
    CHECK(isnan(now[4]));
    CHECK(ep_sampler_channel_last_error(s, 4) == EINVAL);

    /* The run is driven by what the sampler has done, never by how long it took: drain while it
     * runs (the ring is single-producer/single-consumer) until a sample shows the old values,
     * change the files, drain until a sample shows the new power, then stop. */
    size_t cap = 1 << 16;
    uint64_t *ticks = calloc(cap, sizeof(uint64_t));
    double *vals = calloc(cap * 5, sizeof(double));
    CHECK(ep_sampler_start(s) == 0);
    CHECK(ep_sampler_add(s, EP_CH_VALUE, path("power1_input"), NULL, 1.0, 0) == -EBUSY);
    CHECK(ep_sampler_read_now(s, &tick, now) == -EBUSY);
    size_t n = 0;
    n = drain_until(s, ticks, vals, cap, n, 1.5);
    CHECK(n >= 1);
    put("energy_uj", "1000"); /* wrapped: 999000 -> 1000000 (wrap) -> 1000 */
    put("power1_input", "2500000");
    n = drain_until(s, ticks, vals, cap, n, 2.5);
    CHECK(ep_sampler_stop(s) == 0);
    n += ep_sampler_drain(s, ticks + n, vals + n * 5, cap - n);
    ep_sampler_stats st;
    ep_sampler_stats_get(s, &st);
    printf("samples=%zu missed=%llu late_mean=%.0fns late_max=%.0fns read=%.0fns\n", n,
           (unsigned long long)st.missed, st.lateness_mean_ns, st.lateness_max_ns, st.read_mean_ns);
    /* Every sample the thread took is either drained here or counted as dropped. */
    CHECK(n + st.overflows == st.samples);
    CHECK(n >= 2 && n < cap);
    int increasing = 1;
    for (size_t i = 1; i < n; i++) increasing &= ticks[i] > ticks[i - 1];
    CHECK(increasing);
    /* The power column changes once, from 1.5 to 2.5 W, and never goes back. */
    size_t first_new = n;
    for (size_t i = 0; i < n; i++) {
        if (vals[i * 5] == 2.5) {
            first_new = i;
            break;
        }
    }
    CHECK(first_new >= 1 && first_new < n);
    int steps_once = 1;
    for (size_t i = 0; i < n; i++) steps_once &= vals[i * 5] == (i < first_new ? 1.5 : 2.5);
    CHECK(steps_once);
    /* The energy was written before the power, so every sample with the new power (its read
     * order is column 0, then 2) saw the wrapped counter: 1000 uJ to the wrap + 1000 after. */
    int energy_ok = 1;
    for (size_t i = first_new; i < n; i++) energy_ok &= fabs(vals[i * 5 + 2] - 0.002) < 1e-9;
    CHECK(energy_ok);
    CHECK(vals[2] == 0.0); /* the first sample is the counter's origin */
    CHECK(st.read_errors >= n); /* the garbage column fails on every sample */
    CHECK(ep_sampler_channel_errors(s, 4) == st.samples + 1); /* + read_now's read */
    CHECK(ep_sampler_channel_errors(s, 0) == 0);
    ep_sampler_free(s);

    /* A ring too small for the run: records are dropped and counted, never blocked on. Nothing
     * drains it, so once more than 16 samples were taken (seen in the published stats) some
     * must have been dropped. */
    ep_sampler *small = ep_sampler_new(2000.0, 16);
    ep_sampler_add(small, EP_CH_VALUE, path("power1_input"), NULL, 1e-6, 0);
    ep_sampler_start(small);
    for (int i = 0; i < 300000; i++) { /* a bound on waiting for the thread, not a check */
        ep_sampler_stats_get(small, &st);
        if (st.samples > 16) break;
        sleep_ms(1);
    }
    ep_sampler_stop(small);
    ep_sampler_stats_get(small, &st);
    CHECK(st.samples > 16);
    CHECK(st.overflows == st.samples - 16);
    CHECK(ep_sampler_drain(small, ticks, vals, cap) == 16);
    ep_sampler_free(small);

    CHECK(ep_sampler_new(0.0, 16) == NULL);
    CHECK(ep_sampler_new(1000.0, 0) == NULL);
    free(ticks);
    free(vals);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) perror("cleanup");
    CHECK_DONE();
}
