/*
 * The tick clock: the cheapest monotonic counter the CPU offers, calibrated to nanoseconds
 * against CLOCK_MONOTONIC_RAW (the kernel clock that NTP does not slew).
 *
 * x86_64: rdtsc behind lfence to begin, rdtscp + lfence to end (Intel's recommended pairing), only
 * when CPUID says the TSC is invariant. aarch64: CNTVCT_EL0 behind isb. Elsewhere, or when
 * forced: CLOCK_MONOTONIC_RAW itself, with one tick = 1 ns.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "edgeprof.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>
#endif

/* EP_CLOCK_AUTO until calibrated: the first tick read calibrates, so no tick is ever taken
 * from a source other than the one its conversion factor belongs to. */
static atomic_int g_source = EP_CLOCK_AUTO;
static ep_clock_info g_info;
static atomic_int g_ready = 0;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

int64_t ep_monoraw_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int ep_tsc_invariant(void) {
#if defined(__x86_64__)
    unsigned int a, b, c, d;
    if (!__get_cpuid(0x80000000u, &a, &b, &c, &d) || a < 0x80000007u) return 0;
    __get_cpuid(0x80000007u, &a, &b, &c, &d);
    return (d >> 8) & 1u;
#else
    return 0;
#endif
}

#if defined(__aarch64__)
static inline uint64_t read_cntvct(void) {
    uint64_t v;
    __asm__ __volatile__("isb\n\tmrs %0, cntvct_el0" : "=r"(v)::"memory");
    return v;
}
static uint64_t read_cntfrq(void) {
    uint64_t v;
    __asm__ __volatile__("mrs %0, cntfrq_el0" : "=r"(v));
    return v;
}
#endif

static inline uint64_t tick_of(int source) {
    switch (source) {
#if defined(__x86_64__)
    case EP_CLOCK_TSC:
        _mm_lfence();
        return __rdtsc();
#endif
#if defined(__aarch64__)
    case EP_CLOCK_CNTVCT:
        return read_cntvct();
#endif
    default:
        return (uint64_t)ep_monoraw_ns();
    }
}

static int current_source(void) {
    int src = atomic_load_explicit(&g_source, memory_order_relaxed);
    if (__builtin_expect(src == EP_CLOCK_AUTO, 0)) {
        ep_clock_info unused;
        if (ep_clock_get(&unused) < 0) return EP_CLOCK_MONORAW;
        src = atomic_load_explicit(&g_source, memory_order_relaxed);
    }
    return src;
}

uint64_t ep_tick(void) { return tick_of(current_source()); }

uint64_t ep_tick_end(void) {
    int src = current_source();
#if defined(__x86_64__)
    if (src == EP_CLOCK_TSC) {
        unsigned int aux;
        uint64_t t = __rdtscp(&aux);
        _mm_lfence();
        return t;
    }
#endif
    return tick_of(src);
}

/* One (tick, ns) pair: the ns reading bracketed by two ticks; the narrowest of several tries. */
typedef struct pair { double tick; int64_t ns; double width; } pair;

static pair take_pair(int source) {
    pair best = {0, 0, INFINITY};
    for (int i = 0; i < 16; i++) {
        uint64_t t1 = tick_of(source);
        int64_t ns = ep_monoraw_ns();
        uint64_t t2 = tick_of(source);
        double w = (double)(t2 - t1);
        if (w < best.width) {
            best.width = w;
            best.tick = (double)t1 + w / 2.0;
            best.ns = ns;
        }
    }
    return best;
}

static void sleep_ns(int64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static double measure_cost(int source, uint64_t n) {
    int64_t t0 = ep_monoraw_ns();
    uint64_t sink = 0;
    for (uint64_t i = 0; i < n; i++) sink += tick_of(source);
    int64_t t1 = ep_monoraw_ns();
    __asm__ __volatile__("" ::"r"(sink));
    return n ? (double)(t1 - t0) / (double)n : 0.0;
}

double ep_clock_measure_read_cost(uint64_t n) { return measure_cost(current_source(), n); }

/* Smallest non-zero difference between consecutive reads, in ticks. */
static double measure_resolution(int source) {
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 2000; i++) {
        uint64_t a = tick_of(source), b = tick_of(source);
        while (b == a) b = tick_of(source);
        if (b - a < best) best = b - a;
    }
    return (double)best;
}

static int pick_source(int requested) {
    if (requested == EP_CLOCK_MONORAW) return EP_CLOCK_MONORAW;
#if defined(__x86_64__)
    if (requested == EP_CLOCK_TSC || requested == EP_CLOCK_AUTO)
        return ep_tsc_invariant() ? EP_CLOCK_TSC : (requested == EP_CLOCK_TSC ? -ENOTSUP : EP_CLOCK_MONORAW);
    return -ENOTSUP;
#elif defined(__aarch64__)
    if (requested == EP_CLOCK_CNTVCT || requested == EP_CLOCK_AUTO) return EP_CLOCK_CNTVCT;
    return -ENOTSUP;
#else
    return requested == EP_CLOCK_AUTO ? EP_CLOCK_MONORAW : -ENOTSUP;
#endif
}

int ep_clock_init(int source, uint32_t calib_ms, ep_clock_info *out) {
    int src = pick_source(source);
    if (src < 0) return src;
    if (calib_ms < 2) calib_ms = 2;
    ep_clock_info info;
    memset(&info, 0, sizeof info);
    info.source = src;
    /* CNTVCT and MONOTONIC_RAW run at a fixed rate by definition; the TSC only when CPUID says so. */
    info.invariant = (src == EP_CLOCK_TSC) ? ep_tsc_invariant() : 1;
#if defined(__aarch64__)
    if (src == EP_CLOCK_CNTVCT) info.nominal_hz = (double)read_cntfrq();
#endif
    int64_t half = (int64_t)calib_ms * 500000LL;
    pair p0 = take_pair(src);
    sleep_ns(half);
    pair p1 = take_pair(src);
    sleep_ns(half);
    pair p2 = take_pair(src);
    double span = (double)(p2.ns - p0.ns);
    if (span <= 0 || p2.tick <= p0.tick) return -EIO;
    double hz = (p2.tick - p0.tick) / span * 1e9;
    double hz_a = (p1.tick - p0.tick) / (double)(p1.ns - p0.ns) * 1e9;
    double hz_b = (p2.tick - p1.tick) / (double)(p2.ns - p1.ns) * 1e9;
    info.hz = hz;
    info.calib_ppm = fabs(hz_a - hz_b) / hz * 1e6;
    info.calib_span_ns = span;
    double wmax = fmax(p0.width, fmax(p1.width, p2.width));
    info.pair_width_ns = wmax / hz * 1e9;
    info.ref_tick = (uint64_t)p2.tick;
    info.ref_ns = p2.ns;
    info.resolution_ns = measure_resolution(src) / hz * 1e9;
    info.read_cost_ns = measure_cost(src, 200000);

    pthread_mutex_lock(&g_lock);
    g_info = info;
    atomic_store(&g_source, src);
    atomic_store_explicit(&g_ready, 1, memory_order_release);
    pthread_mutex_unlock(&g_lock);
    if (out) *out = info;
    return 0;
}

int ep_clock_get(ep_clock_info *out) {
    if (!atomic_load_explicit(&g_ready, memory_order_acquire)) {
        int rc = ep_clock_init(EP_CLOCK_AUTO, 100, NULL);
        if (rc < 0) return rc;
    }
    pthread_mutex_lock(&g_lock);
    *out = g_info;
    pthread_mutex_unlock(&g_lock);
    return 0;
}
