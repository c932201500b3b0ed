/*
 * edgeprof native core: the tick clock, region marks, perf counters and the sampler thread.
 *
 * Everything on the measurement path lives here so that Python never sits between the clock
 * and the measurement. Functions return 0 (or a non-negative value) on success and a negative
 * errno on failure; nothing here calls into Python or allocates on the hot path.
 *
 * The same header is fed to cffi (native/build_native.py) and to the C unit tests.
 */
#ifndef EDGEPROF_H
#define EDGEPROF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- clock */

enum ep_clock_source {
    EP_CLOCK_AUTO = 0,     /* pick the cheapest trustworthy source */
    EP_CLOCK_TSC = 1,      /* x86_64 rdtsc/rdtscp, invariant TSC only */
    EP_CLOCK_CNTVCT = 2,   /* aarch64 CNTVCT_EL0 */
    EP_CLOCK_MONORAW = 3   /* clock_gettime(CLOCK_MONOTONIC_RAW), in ns */
};

typedef struct ep_clock_info {
    int source;             /* enum ep_clock_source actually in use */
    int invariant;          /* 1 when the hardware says the tick rate is constant */
    double hz;              /* calibrated ticks per second */
    double nominal_hz;      /* what the hardware claims (CNTFRQ_EL0), 0 where unknown */
    uint64_t ref_tick;      /* a tick taken at calibration end ... */
    int64_t ref_ns;         /* ... and the CLOCK_MONOTONIC_RAW ns it corresponds to */
    double resolution_ns;   /* smallest non-zero step seen between consecutive reads */
    double read_cost_ns;    /* mean cost of one tick read, measured at init */
    double calib_ppm;       /* disagreement of the two calibration halves, parts per million */
    double calib_span_ns;   /* how long calibration ran */
    double pair_width_ns;   /* uncertainty of the (tick, ns) pairs used */
} ep_clock_info;

/* Select and calibrate the tick source (process-wide). calib_ms: total calibration time. */
int ep_clock_init(int source, uint32_t calib_ms, ep_clock_info *out);
/* The calibration in force (ep_clock_init runs with defaults on first use). */
int ep_clock_get(ep_clock_info *out);
/* Read the tick. Cheap: a predictable branch and the instruction itself. */
uint64_t ep_tick(void);
/* A tick that no later instruction can move in front of (rdtscp; lfence on x86). */
uint64_t ep_tick_end(void);
/* CLOCK_MONOTONIC_RAW in ns. */
int64_t ep_monoraw_ns(void);
/* Mean cost of one ep_tick() over n back-to-back reads, in ns. */
double ep_clock_measure_read_cost(uint64_t n);
/* Whether the CPU reports an invariant TSC (x86_64 only; 0 elsewhere). */
int ep_tsc_invariant(void);

/* ---------------------------------------------------------------- perf counters */

typedef struct ep_counters ep_counters;

/* Open hardware cycle + instruction counters for the calling thread (user space only).
 * On failure returns NULL and writes the reason into reason[reason_len]. */
ep_counters *ep_counters_open(char *reason, size_t reason_len);
void ep_counters_close(ep_counters *c);
/* Read both counters; returns 0 or -errno. */
int ep_counters_read(ep_counters *c, uint64_t *cycles, uint64_t *instructions);

/* ---------------------------------------------------------------- regions */

typedef struct ep_regions ep_regions;

/* A preallocated buffer of `capacity` regions. counters: also record cycle and instruction
 * counts at each mark (opened for the calling thread; see ep_regions_counters_reason). */
ep_regions *ep_regions_new(size_t capacity, int counters);
void ep_regions_free(ep_regions *r);
/* Open a region; returns its index, or -ENOSPC when the buffer is full (the mark is counted
 * as dropped), -EBUSY when a region is already open. */
int64_t ep_region_begin(ep_regions *r);
/* Close the open region; returns its index or -EINVAL when none is open. */
int64_t ep_region_end(ep_regions *r);
size_t ep_regions_count(const ep_regions *r);
size_t ep_regions_capacity(const ep_regions *r);
uint64_t ep_regions_dropped(const ep_regions *r);
uint64_t ep_regions_unmatched(const ep_regions *r);
int ep_regions_has_counters(const ep_regions *r);
const char *ep_regions_counters_reason(const ep_regions *r);
/* Copy out up to max closed regions. cycles/instructions may be NULL. Returns the count. */
size_t ep_regions_copy(const ep_regions *r, uint64_t *begin, uint64_t *end, uint64_t *cycles,
                       uint64_t *instructions, size_t max);
void ep_regions_reset(ep_regions *r);
/* Zero-argument marks on the active buffer: the cheapest call cffi can make. */
void ep_regions_activate(ep_regions *r);
void ep_mark_begin(void);
void ep_mark_end(void);

/* ---------------------------------------------------------------- parsing */

/* Parse a decimal integer with optional surrounding whitespace and sign; nothing else may
 * follow. Returns 0, -EINVAL on malformed input, -ERANGE on overflow. */
int ep_parse_int64(const char *buf, size_t len, int64_t *out);
/* The resident-pages field (second) of /proc/<pid>/statm. */
int ep_parse_statm_resident(const char *buf, size_t len, int64_t *pages);
/* The "Pss:" line of /proc/<pid>/smaps_rollup, in kB. */
int ep_parse_smaps_pss_kb(const char *buf, size_t len, int64_t *kb);

/* ---------------------------------------------------------------- ring */

typedef struct ep_ring ep_ring;

/* Lock-free single-producer/single-consumer ring of records {tick, ncols doubles}.
 * capacity is rounded up to a power of two. */
ep_ring *ep_ring_new(size_t capacity, size_t ncols);
void ep_ring_free(ep_ring *r);
/* Producer side: returns 0, or -ENOSPC when full (record dropped). */
int ep_ring_push(ep_ring *r, uint64_t tick, const double *values);
/* Consumer side: copy out up to max records (values row-major); returns the count. */
size_t ep_ring_drain(ep_ring *r, uint64_t *ticks, double *values, size_t max);
size_t ep_ring_size(const ep_ring *r);
size_t ep_ring_capacity(const ep_ring *r);

/* ---------------------------------------------------------------- sampler */

enum ep_chan_kind {
    EP_CH_VALUE = 1,      /* one file: value * scale */
    EP_CH_PRODUCT = 2,    /* two files: a * b * scale */
    EP_CH_COUNTER = 3,    /* one cumulative file, wraps at `wrap`: (unwrapped - first) * scale */
    EP_CH_STATM_RSS = 4,  /* /proc/<pid>/statm: resident pages * page size, in bytes */
    EP_CH_SMAPS_PSS = 5   /* /proc/<pid>/smaps_rollup: Pss kB * 1024, in bytes */
};

typedef struct ep_sampler ep_sampler;

typedef struct ep_sampler_stats {
    uint64_t samples;          /* records produced */
    uint64_t missed;           /* deadlines skipped because the thread woke a period late */
    uint64_t overflows;        /* records dropped because the ring was full */
    uint64_t read_errors;      /* channel reads that failed or did not parse (value is NaN) */
    double lateness_mean_ns;   /* wake-up lateness against the absolute deadline */
    double lateness_std_ns;
    double lateness_max_ns;
    double read_mean_ns;       /* time spent reading all channels, per sample */
    double read_max_ns;
    uint64_t lateness_hist[16];/* bucket k: lateness in [2^(k+9), 2^(k+10)) ns; 0: < 1 us */
    double spin_margin_ns;     /* current sleep-then-spin margin (0: pure sleep) */
    int realtime;              /* 1 when SCHED_FIFO was granted */
    int running;
} ep_sampler_stats;

/* rate_hz: samples per second; ring_capacity: records buffered between drains. */
ep_sampler *ep_sampler_new(double rate_hz, size_t ring_capacity);
void ep_sampler_free(ep_sampler *s);
/* Add a channel before start. Returns its column index, or -errno (file open failure,
 * bad parameter, too many channels, already started). path_b only for EP_CH_PRODUCT. */
int ep_sampler_add(ep_sampler *s, int kind, const char *path_a, const char *path_b, double scale,
                   double wrap);
size_t ep_sampler_ncols(const ep_sampler *s);
/* Before start: pin the thread to cpu (-1: no pin), ask for SCHED_FIFO, and choose how to wait
 * for a deadline. spin_ns < 0: automatic (sleep to a margin before the deadline, then spin,
 * with the margin learnt from observed wake-up latency; used at rates >= 2 kHz, where a timer
 * wake-up that is a few tens of us late would otherwise miss the next deadline); 0: always
 * sleep; > 0: a fixed spin margin in ns. */
int ep_sampler_configure(ep_sampler *s, int cpu, int realtime, int64_t spin_ns);
int ep_sampler_start(ep_sampler *s);
int ep_sampler_stop(ep_sampler *s);
/* Take one sample now on the calling thread, bypassing the ring (for live readings). */
int ep_sampler_read_now(ep_sampler *s, uint64_t *tick, double *values);
size_t ep_sampler_drain(ep_sampler *s, uint64_t *ticks, double *values, size_t max);
void ep_sampler_stats_get(const ep_sampler *s, ep_sampler_stats *out);
uint64_t ep_sampler_channel_errors(const ep_sampler *s, size_t col);
/* The errno of the last failed read on a column (0 if none; EINVAL for unparsable data). */
int ep_sampler_channel_last_error(const ep_sampler *s, size_t col);

#define EP_MAX_CHANNELS 256

#ifdef __cplusplus
}
#endif
#endif /* EDGEPROF_H */
