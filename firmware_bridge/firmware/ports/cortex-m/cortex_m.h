/* cortex_m.h - the few Armv7-M system registers the Cortex-M ports use (ARMv7-M ARM, B3), and
 * the shared start-up and cycle-counter code of ports/cortex-m/.
 *
 * Register-level on purpose: no CMSIS or vendor SDK in the reference firmware's ports, so a
 * reader sees every access the measurement depends on.
 */
#ifndef EP_CORTEX_M_H
#define EP_CORTEX_M_H

#include <stdint.h>

#define EP_REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* System control block. */
#define SCB_ICSR EP_REG32(0xE000ED04u)
#define SCB_ICSR_PENDSTSET (1u << 26)
#define SCB_AIRCR EP_REG32(0xE000ED0Cu)
#define SCB_AIRCR_SYSRESETREQ (0x05FAu << 16 | 1u << 2)
#define SCB_CPACR EP_REG32(0xE000ED88u)
#define SCB_DEMCR EP_REG32(0xE000EDFCu)
#define SCB_DEMCR_TRCENA (1u << 24)

/* SysTick: a 24-bit down-counter. */
#define SYST_CSR EP_REG32(0xE000E010u)
#define SYST_RVR EP_REG32(0xE000E014u)
#define SYST_CVR EP_REG32(0xE000E018u)
#define SYST_CSR_ENABLE (1u << 0)
#define SYST_CSR_TICKINT (1u << 1)
#define SYST_CSR_CLKSOURCE (1u << 2) /* 1: the processor clock */
#define SYST_CSR_COUNTFLAG (1u << 16) /* a wrap since the last read of CSR */
#define SYST_RELOAD 0x00FFFFFFu
#define SYST_PERIOD 0x01000000u

/* Data watchpoint and trace unit: the 32-bit cycle counter CYCCNT. */
#define DWT_CTRL EP_REG32(0xE0001000u)
#define DWT_CYCCNT EP_REG32(0xE0001004u)
#define DWT_LAR EP_REG32(0xE0001FB0u)
#define DWT_CTRL_CYCCNTENA (1u << 0)
#define DWT_CTRL_NOCYCCNT (1u << 25)

static inline uint32_t ep_cm_irq_save(void)
{
    uint32_t primask;
    __asm__ volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
    return primask;
}

static inline void ep_cm_irq_restore(uint32_t primask)
{
    __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory");
}

/* Linker-script symbols shared by the Cortex-M ports (see their *.ld). */
extern uint8_t __stack_lo[], __stack_hi[];

/* Start the cycle counter: DWT CYCCNT when allow_dwt and it really advances, else SysTick on
 * the processor clock. SysTick runs in both cases: its wrap interrupt extends the counter in
 * use to 64 bits. */
void ep_cm_cycles_init(int allow_dwt);
uint64_t ep_cm_cycles(void);
/* 1 when DWT CYCCNT is the source, 0 for SysTick. */
int ep_cm_cycles_dwt(void);
/* SysTick wraps counted by its interrupt so far. */
extern volatile uint32_t ep_cm_systick_wraps;
/* The 64-bit SysTick count from, read with interrupts masked and in this order: the wrap
 * count, the counter (v1), ICSR.PENDSTSET, the counter again (v2). The count is v1's. */
uint64_t ep_cm_systick_count(uint32_t wraps, uint32_t v1, uint32_t pending, uint32_t v2);

/* Ask the system for a reset (AIRCR.SYSRESETREQ); never returns. */
void ep_cm_system_reset(void) __attribute__((noreturn));

/* A 32-bit mix (murmur3's finaliser) for boot ids. */
uint32_t ep_cm_mix32(uint32_t h);

/* Called by the start-up code after .data and .bss are set up; the port's board bring-up. */
int main(void);

/* The handler of every exception nobody claims: ends in ep_cm_fatal. */
void ep_cm_default_handler(void);

/* Called from the fault handlers; each port decides (QEMU: exit with a status, boards: reset). */
void ep_cm_fatal(uint32_t code) __attribute__((noreturn));

#endif
