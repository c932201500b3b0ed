/* semihost.h - the Arm semihosting calls the QEMU port uses (Arm "Semihosting for AArch32 and
 * AArch64", v2.0): BKPT 0xAB with the operation in r0 and its argument in r1.
 *
 * QEMU serves them with -semihosting-config enable=on,target=native. Without it the BKPT faults
 * and the port's HardFault handler returns -1 (see ports/cortex-m/startup.c).
 */
#ifndef EP_SEMIHOST_H
#define EP_SEMIHOST_H

#include <stdint.h>

#define SEMIHOST_SYS_CLOCK 0x10u       /* centiseconds since the emulator started */
#define SEMIHOST_SYS_TIME 0x11u        /* seconds since 1970 on the host */
#define SEMIHOST_SYS_GET_CMDLINE 0x15u /* the -semihosting-config arg= list, space-separated */
#define SEMIHOST_SYS_EXIT_EXTENDED 0x20u
#define SEMIHOST_ADP_STOPPED_APPLICATION_EXIT 0x20026u

static inline int32_t semihost_call(uint32_t op, void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return (int32_t)r0;
}

#endif
