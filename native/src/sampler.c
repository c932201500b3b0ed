/*
 * The sampler: a native thread that wakes on absolute deadlines (clock_nanosleep with
 * TIMER_ABSTIME, so lateness never accumulates), reads every channel from pre-opened file
 * descriptors with pread, and pushes one record into a lock-free ring.
 *
 * It never calls into Python and never takes the GIL. A wake-up later than one whole period
 * skips the lost deadlines and counts them as missed, rather than sampling in a burst.
 * Statistics are kept privately by the thread and published every few samples with a trylock,
 * so a reader can never stall it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "edgeprof.h"

#define SMALL_READ 64
#define SMAPS_READ 8192
#define PUBLISH_EVERY 64

typedef struct channel {
    int kind;
    int fd_a, fd_b;
    double scale, wrap;
    int has_first;
    int64_t first, last;
    double wrapped; /* sum of wrap lengths crossed so far */
    atomic_uint_least64_t errors;
    atomic_int last_error;
} channel;

typedef struct thread_stats {
    uint64_t samples, missed, overflows, read_errors;
    double late_sum, late_sumsq, late_max, read_sum, read_max, margin;
    uint64_t hist[16];
} thread_stats;

struct ep_sampler {
    double rate_hz;
    int64_t period_ns;
    size_t ring_capacity;
    size_t n;
    channel ch[EP_MAX_CHANNELS];
    ep_ring *ring;
    pthread_t thread;
    atomic_int stop;
    atomic_int running;
    int started;
    int cpu, want_rt;
    int64_t spin_cfg;
    atomic_int realtime;
    double *scratch; /* one record, for the thread */
    pthread_mutex_t stats_lock;
    thread_stats published;
    long page_size;
};

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

ep_sampler *ep_sampler_new(double rate_hz, size_t ring_capacity) {
    if (!(rate_hz > 0.0) || rate_hz > 1e6 || ring_capacity == 0) return NULL;
    ep_sampler *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->rate_hz = rate_hz;
    s->period_ns = (int64_t)llround(1e9 / rate_hz);
    s->ring_capacity = ring_capacity;
    s->cpu = -1;
    s->spin_cfg = -1;
    s->page_size = sysconf(_SC_PAGESIZE);
    pthread_mutex_init(&s->stats_lock, NULL);
    for (size_t i = 0; i < EP_MAX_CHANNELS; i++) s->ch[i].fd_a = s->ch[i].fd_b = -1;
    return s;
}

void ep_sampler_free(ep_sampler *s) {
    if (!s) return;
    ep_sampler_stop(s);
    for (size_t i = 0; i < s->n; i++) {
        if (s->ch[i].fd_a >= 0) close(s->ch[i].fd_a);
        if (s->ch[i].fd_b >= 0) close(s->ch[i].fd_b);
    }
    ep_ring_free(s->ring);
    free(s->scratch);
    pthread_mutex_destroy(&s->stats_lock);
    free(s);
}

int ep_sampler_add(ep_sampler *s, int kind, const char *path_a, const char *path_b, double scale,
                   double wrap) {
    if (s->started) return -EBUSY;
    if (s->n >= EP_MAX_CHANNELS) return -E2BIG;
    if (!path_a || kind < EP_CH_VALUE || kind > EP_CH_SMAPS_PSS || !isfinite(scale))
        return -EINVAL;
    if (kind == EP_CH_PRODUCT && !path_b) return -EINVAL;
    if (kind == EP_CH_COUNTER && !(wrap > 0.0)) return -EINVAL;
    int fa = open(path_a, O_RDONLY | O_CLOEXEC);
    if (fa < 0) return -errno;
    int fb = -1;
    if (kind == EP_CH_PRODUCT) {
        fb = open(path_b, O_RDONLY | O_CLOEXEC);
        if (fb < 0) {
            int e = errno;
            close(fa);
            return -e;
        }
    }
    channel *c = &s->ch[s->n];
    c->kind = kind;
    c->fd_a = fa;
    c->fd_b = fb;
    c->scale = scale;
    c->wrap = wrap;
    if (kind == EP_CH_STATM_RSS) c->scale = (double)s->page_size * scale;
    if (kind == EP_CH_SMAPS_PSS) c->scale = 1024.0 * scale;
    atomic_init(&c->errors, 0);
    atomic_init(&c->last_error, 0);
    return (int)s->n++;
}

size_t ep_sampler_ncols(const ep_sampler *s) { return s->n; }

int ep_sampler_configure(ep_sampler *s, int cpu, int realtime, int64_t spin_ns) {
    if (s->started) return -EBUSY;
    s->cpu = cpu;
    s->want_rt = realtime;
    s->spin_cfg = spin_ns;
    return 0;
}

/* pread at offset 0: sysfs regenerates the value on every read from the start of the file. */
static int read_file(int fd, char *buf, size_t cap, size_t *len) {
    ssize_t n;
    do {
        n = pread(fd, buf, cap, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    if (n == 0 || (size_t)n >= cap) return -EINVAL; /* empty, or longer than any sane value */
    *len = (size_t)n;
    return 0;
}

static int read_int(int fd, int64_t *v) {
    char buf[SMALL_READ];
    size_t len;
    int rc = read_file(fd, buf, sizeof buf, &len);
    return rc < 0 ? rc : ep_parse_int64(buf, len, v);
}

static int read_channel(channel *c, double *out) {
    int64_t a = 0, b = 0;
    int rc;
    switch (c->kind) {
    case EP_CH_VALUE:
        rc = read_int(c->fd_a, &a);
        if (rc == 0) *out = (double)a * c->scale;
        return rc;
    case EP_CH_PRODUCT:
        rc = read_int(c->fd_a, &a);
        if (rc == 0) rc = read_int(c->fd_b, &b);
        if (rc == 0) *out = (double)a * (double)b * c->scale;
        return rc;
    case EP_CH_COUNTER:
        rc = read_int(c->fd_a, &a);
        if (rc < 0) return rc;
        if (a < 0 || (double)a > c->wrap) return -ERANGE;
        if (!c->has_first) {
            c->has_first = 1;
            c->first = c->last = a;
        } else if (a < c->last) {
            c->wrapped += c->wrap;
        }
        c->last = a;
        *out = ((double)(a - c->first) + c->wrapped) * c->scale;
        return 0;
    case EP_CH_STATM_RSS: {
        char buf[256];
        size_t len;
        rc = read_file(c->fd_a, buf, sizeof buf, &len);
        if (rc == 0) rc = ep_parse_statm_resident(buf, len, &a);
        if (rc == 0) *out = (double)a * c->scale;
        return rc;
    }
    case EP_CH_SMAPS_PSS: {
        char buf[SMAPS_READ];
        size_t len;
        rc = read_file(c->fd_a, buf, sizeof buf, &len);
        if (rc == 0) rc = ep_parse_smaps_pss_kb(buf, len, &a);
        if (rc == 0) *out = (double)a * c->scale;
        return rc;
    }
    default:
        return -EINVAL;
    }
}

/* Read every channel into values; a failed channel reads NaN and is counted. */
static uint64_t read_all(ep_sampler *s, double *values) {
    uint64_t errs = 0;
    for (size_t i = 0; i < s->n; i++) {
        int rc = read_channel(&s->ch[i], &values[i]);
        if (rc < 0) {
            values[i] = NAN;
            atomic_fetch_add_explicit(&s->ch[i].errors, 1, memory_order_relaxed);
            atomic_store_explicit(&s->ch[i].last_error, -rc, memory_order_relaxed);
            errs++;
        }
    }
    return errs;
}

static int hist_bucket(double late_ns) {
    if (late_ns < 1024.0) return 0;
    int k = (int)floor(log2(late_ns)) - 9;
    return k > 15 ? 15 : k;
}

static void publish(ep_sampler *s, const thread_stats *st, int force) {
    if (force)
        pthread_mutex_lock(&s->stats_lock);
    else if (pthread_mutex_trylock(&s->stats_lock) != 0)
        return;
    s->published = *st;
    pthread_mutex_unlock(&s->stats_lock);
}

static void *sampler_main(void *arg) {
    ep_sampler *s = arg;
    thread_stats st;
    memset(&st, 0, sizeof st);
    /* The default 50 us timer slack would swamp a 100 us period. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    if (s->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(s->cpu, &set);
        pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    }
    if (s->want_rt) {
        struct sched_param sp = {.sched_priority = 10};
        if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0)
            atomic_store(&s->realtime, 1);
    }
    const int64_t period = s->period_ns;
    /* Sleep-then-spin. The margin follows a decaying maximum of the observed wake-up latency
     * (half-life 1 s), capped at 60 % of the period: what matters is the tail, since one
     * wake-up later than a period loses a sample (on a VM, the vCPU's halt/wake path has a
     * tail of 100-200 us while its median is 20-30 us). */
    int adaptive = s->spin_cfg < 0 && period <= 500000;
    double margin = s->spin_cfg > 0 ? (double)s->spin_cfg : 0.0;
    double tail = 0.0;
    const double decay = pow(0.5, (double)period / 1e9);
    const double margin_cap = 0.6 * (double)period;
    int64_t deadline = mono_ns() + period;
    while (!atomic_load_explicit(&s->stop, memory_order_acquire)) {
        int64_t target = deadline - (int64_t)margin;
        struct timespec ts = {(time_t)(target / 1000000000LL), (long)(target % 1000000000LL)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
        int64_t w = mono_ns();
        if (adaptive) {
            double lat = (double)(w - target);
            tail *= decay;
            if (lat > tail) tail = lat;
            margin = tail < margin_cap ? tail : margin_cap;
        }
        while (w < deadline) w = mono_ns();
        st.margin = margin;
        int64_t woke = mono_ns();
        uint64_t tick = ep_tick();
        double late = (double)(woke - deadline);
        if (late < 0) late = 0;
        st.read_errors += read_all(s, s->scratch);
        int64_t done = mono_ns();
        if (ep_ring_push(s->ring, tick, s->scratch) < 0) st.overflows++;
        st.samples++;
        st.late_sum += late;
        st.late_sumsq += late * late;
        if (late > st.late_max) st.late_max = late;
        st.hist[hist_bucket(late)]++;
        double rd = (double)(done - woke);
        st.read_sum += rd;
        if (rd > st.read_max) st.read_max = rd;
        deadline += period;
        /* Woke (or finished reading) past the next deadline: skip, never burst. */
        if (done >= deadline) {
            int64_t skip = (done - deadline) / period + 1;
            st.missed += (uint64_t)skip;
            deadline += skip * period;
        }
        if (st.samples % PUBLISH_EVERY == 0) publish(s, &st, 0);
    }
    publish(s, &st, 1);
    return NULL;
}

int ep_sampler_start(ep_sampler *s) {
    if (s->started) return -EBUSY;
    s->ring = ep_ring_new(s->ring_capacity, s->n);
    s->scratch = calloc(s->n ? s->n : 1, sizeof(double));
    if (!s->ring || !s->scratch) return -ENOMEM;
    atomic_store(&s->stop, 0);
    /* The thread must never run a signal handler (Python's included): block them all. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&s->thread, NULL, sampler_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) return -rc;
    s->started = 1;
    atomic_store(&s->running, 1);
    return 0;
}

int ep_sampler_stop(ep_sampler *s) {
    if (!atomic_load(&s->running)) return 0;
    atomic_store_explicit(&s->stop, 1, memory_order_release);
    pthread_join(s->thread, NULL);
    atomic_store(&s->running, 0);
    return 0;
}

int ep_sampler_read_now(ep_sampler *s, uint64_t *tick, double *values) {
    if (atomic_load(&s->running)) return -EBUSY;
    *tick = ep_tick();
    return read_all(s, values) ? -EIO : 0;
}

size_t ep_sampler_drain(ep_sampler *s, uint64_t *ticks, double *values, size_t max) {
    if (!s->ring) return 0;
    return ep_ring_drain(s->ring, ticks, values, max);
}

void ep_sampler_stats_get(const ep_sampler *s, ep_sampler_stats *out) {
    ep_sampler *m = (ep_sampler *)s;
    thread_stats st;
    pthread_mutex_lock(&m->stats_lock);
    st = m->published;
    pthread_mutex_unlock(&m->stats_lock);
    memset(out, 0, sizeof *out);
    out->samples = st.samples;
    out->missed = st.missed;
    out->overflows = st.overflows;
    out->read_errors = st.read_errors;
    if (st.samples) {
        double n = (double)st.samples;
        out->lateness_mean_ns = st.late_sum / n;
        double var = st.late_sumsq / n - out->lateness_mean_ns * out->lateness_mean_ns;
        out->lateness_std_ns = var > 0 ? sqrt(var) : 0.0;
        out->read_mean_ns = st.read_sum / n;
    }
    out->spin_margin_ns = st.margin;
    out->lateness_max_ns = st.late_max;
    out->read_max_ns = st.read_max;
    memcpy(out->lateness_hist, st.hist, sizeof st.hist);
    out->realtime = atomic_load(&m->realtime);
    out->running = atomic_load(&m->running);
}

uint64_t ep_sampler_channel_errors(const ep_sampler *s, size_t col) {
    if (col >= s->n) return 0;
    return atomic_load(&((ep_sampler *)s)->ch[col].errors);
}

int ep_sampler_channel_last_error(const ep_sampler *s, size_t col) {
    if (col >= s->n) return 0;
    return atomic_load(&((ep_sampler *)s)->ch[col].last_error);
}
