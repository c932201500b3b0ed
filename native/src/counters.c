/*
 * Hardware cycle and instruction counts for the calling thread, through perf_event_open.
 *
 * True CPU cycles (not wall ticks) are what tells a frequency drop from slower code. Where the
 * kernel refuses (perf_event_paranoid, seccomp, no PMU exposed to a VM), the reason is spelled
 * out, because "unavailable" alone sends people hunting.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "edgeprof.h"

struct ep_counters {
    int leader; /* cycles */
    int member; /* instructions */
};

static int perf_open(uint64_t config, int group_fd) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_HARDWARE;
    attr.config = config;
    attr.disabled = group_fd == -1 ? 1 : 0;
    attr.exclude_kernel = 1; /* allowed at perf_event_paranoid <= 2 */
    attr.exclude_hv = 1;
    attr.read_format = PERF_FORMAT_GROUP;
    return (int)syscall(SYS_perf_event_open, &attr, 0 /* this thread */, -1, group_fd,
                        PERF_FLAG_FD_CLOEXEC);
}

static int read_paranoid(void) {
    FILE *f = fopen("/proc/sys/kernel/perf_event_paranoid", "r");
    int v = -99;
    if (f) {
        if (fscanf(f, "%d", &v) != 1) v = -99;
        fclose(f);
    }
    return v;
}

static void explain(int err, char *reason, size_t len) {
    if (!reason || !len) return;
    int paranoid = read_paranoid();
    switch (err) {
    case EACCES:
    case EPERM:
        snprintf(reason, len,
                 "perf_event_open refused (%s); kernel.perf_event_paranoid=%d: user-space "
                 "counting needs <= 2 or CAP_PERFMON (a container seccomp profile can also "
                 "block it)",
                 strerror(err), paranoid);
        break;
    case ENOENT:
    case EOPNOTSUPP:
    case ENODEV:
        snprintf(reason, len,
                 "no hardware PMU for cycles/instructions (%s): typical in a VM without a "
                 "virtual PMU, or a CPU whose counters the kernel does not drive",
                 strerror(err));
        break;
    case ENOSYS:
        snprintf(reason, len, "kernel built without perf events (ENOSYS)");
        break;
    default:
        snprintf(reason, len, "perf_event_open failed: %s (paranoid=%d)", strerror(err), paranoid);
    }
}

ep_counters *ep_counters_open(char *reason, size_t reason_len) {
    int leader = perf_open(PERF_COUNT_HW_CPU_CYCLES, -1);
    if (leader < 0) {
        explain(errno, reason, reason_len);
        return NULL;
    }
    int member = perf_open(PERF_COUNT_HW_INSTRUCTIONS, leader);
    if (member < 0) {
        explain(errno, reason, reason_len);
        close(leader);
        return NULL;
    }
    ep_counters *c = calloc(1, sizeof *c);
    if (!c) {
        close(member);
        close(leader);
        if (reason && reason_len) snprintf(reason, reason_len, "out of memory");
        return NULL;
    }
    c->leader = leader;
    c->member = member;
    ioctl(leader, PERF_EVENT_IOC_RESET, PERF_IOC_FLAG_GROUP);
    ioctl(leader, PERF_EVENT_IOC_ENABLE, PERF_IOC_FLAG_GROUP);
    /* A counter that opens but never counts (some hypervisors) is as good as none. */
    uint64_t cy = 0, in = 0;
    volatile uint64_t spin = 0;
    for (int i = 0; i < 10000; i++) spin += (uint64_t)i;
    if (ep_counters_read(c, &cy, &in) < 0 || cy == 0) {
        if (reason && reason_len)
            snprintf(reason, reason_len, "cycle counter opened but does not count (virtual PMU?)");
        ep_counters_close(c);
        return NULL;
    }
    return c;
}

void ep_counters_close(ep_counters *c) {
    if (!c) return;
    close(c->member);
    close(c->leader);
    free(c);
}

int ep_counters_read(ep_counters *c, uint64_t *cycles, uint64_t *instructions) {
    uint64_t buf[3]; /* nr, cycles, instructions */
    ssize_t n = read(c->leader, buf, sizeof buf);
    if (n != (ssize_t)sizeof buf) return n < 0 ? -errno : -EIO;
    if (buf[0] != 2) return -EIO;
    *cycles = buf[1];
    *instructions = buf[2];
    return 0;
}
