/* The host port: the firmware as a Linux process serving a pseudo-terminal, for tests and for
 * developing without a board. It prints the pty's slave path on stdout (one line) and serves the
 * protocol on it. RESET (or SIGUSR1, a "reset button" for fault injection) re-executes the
 * process on the same pty, so all state is lost and the boot id changes, as on a board.
 *
 *   edgeprof-fw-host [--board ID]      prints /dev/pts/N, then serves until SIGTERM/SIGINT
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ep_port.h"
#include "ep_workload.h"

static int s_master = -1, s_slave = -1;
static char **s_argv;
static const char *s_board = "host-firmware";
static uint32_t s_boot;
static uint64_t s_t0_ns;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void reexec(void) {
    /* argv[0] of a reset: the same binary, told which fds to keep (async-signal-safe path). */
    char m[16], s[16];
    snprintf(m, sizeof m, "%d", s_master);
    snprintf(s, sizeof s, "%d", s_slave);
    char *args[] = {s_argv[0], "--fds", m, s, "--board", (char *)s_board, NULL};
    execv("/proc/self/exe", args);
    _exit(3);
}

static void on_reset_signal(int sig) {
    (void)sig;
    reexec();
}

static int open_pty(void) {
    s_master = posix_openpt(O_RDWR | O_NOCTTY);
    if (s_master < 0 || grantpt(s_master) || unlockpt(s_master)) return -1;
    const char *name = ptsname(s_master);
    if (!name) return -1;
    /* Hold the slave open ourselves: the master then never sees a hang-up between clients, and
     * raw mode set here means no echo or line editing before a client sets its own. */
    s_slave = open(name, O_RDWR | O_NOCTTY);
    if (s_slave < 0) return -1;
    struct termios t;
    if (tcgetattr(s_slave, &t)) return -1;
    cfmakeraw(&t);
    if (tcsetattr(s_slave, TCSANOW, &t)) return -1;
    printf("%s\n", name);
    fflush(stdout);
    return 0;
}

void ep_port_init(void) {}

int ep_port_read(uint8_t *buf, size_t cap, uint32_t timeout_ms) {
    struct pollfd p = {s_master, POLLIN, 0};
    int r = poll(&p, 1, (int)timeout_ms);
    if (r < 0) return errno == EINTR ? 0 : -1;
    if (r == 0) return 0;
    if (p.revents & (POLLERR | POLLNVAL)) return -1;
    ssize_t n = read(s_master, buf, cap);
    if (n < 0) return (errno == EINTR || errno == EAGAIN || errno == EIO) ? 0 : -1;
    return (int)n;
}

int ep_port_write(const uint8_t *buf, size_t len) {
    while (len) {
        ssize_t n = write(s_master, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                struct pollfd p = {s_master, POLLOUT, 0};
                poll(&p, 1, 100);
                continue;
            }
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

uint64_t ep_port_cycles(void) { return now_ns(); }
uint32_t ep_port_cycle_hz(void) { return 1000000000u; }
const char *ep_port_cycle_source(void) { return "clock-monotonic"; }
uint32_t ep_port_millis(void) { return (uint32_t)((now_ns() - s_t0_ns) / 1000000u); }
const char *ep_port_board(void) { return s_board; }
uint32_t ep_port_cpu_hz(void) { return 0; }
uint32_t ep_port_ram_bytes(void) { return 0; }
uint32_t ep_port_flash_bytes(void) { return 0; }
uint32_t ep_port_boot_id(void) { return s_boot; }

void ep_port_stack_region(uint8_t **lo, uint8_t **hi) { *lo = *hi = NULL; }

void ep_port_reset(void) {
    tcdrain(s_master);
    reexec();
}

void ep_port_exit(int status) { exit(status); }

static void on_term(int sig) {
    (void)sig;
    _exit(0);
}

int main(int argc, char **argv) {
    s_argv = argv;
    s_t0_ns = now_ns();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--fds") == 0 && i + 2 < argc) {
            s_master = atoi(argv[i + 1]);
            s_slave = atoi(argv[i + 2]);
            i += 2;
        } else if (strcmp(argv[i], "--board") == 0 && i + 1 < argc) {
            s_board = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--board ID]\n", argv[0]);
            return 2;
        }
    }
    if (getrandom(&s_boot, sizeof s_boot, 0) != (ssize_t)sizeof s_boot)
        s_boot = (uint32_t)getpid() ^ (uint32_t)now_ns();
    if (s_boot == 0) s_boot = 1; /* 0 means "unknown" in host requests */
    if (s_master < 0 && open_pty()) {
        perror("edgeprof-fw-host: cannot open a pseudo-terminal");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_reset_signal;
    sa.sa_flags = SA_NODEFER;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    ep_port_init();
    ep_main();
    return 0;
}
