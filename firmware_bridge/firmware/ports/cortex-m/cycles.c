/* cycles.c - a 64-bit cycle counter from DWT CYCCNT or SysTick, for the Cortex-M ports.
 *
 * DWT CYCCNT counts core cycles but is optional, and QEMU's Cortex-M4 claims it (DWT_CTRL's
 * NOCYCCNT reads 0) while CYCCNT always reads 0: so the counter is enabled and must be seen to
 * advance before it is trusted. SysTick always exists but is 24 bits wide: its wrap interrupt
 * counts the high part. With CYCCNT in use, the same interrupt (every 2^24 cycles) extends the
 * 32-bit CYCCNT, which therefore never wraps unseen.
 */
#include "cortex_m.h"

volatile uint32_t ep_cm_systick_wraps;
static int use_dwt;
static uint32_t dwt_last, dwt_high;

static uint64_t dwt_read(void)
{
    uint32_t irq = ep_cm_irq_save();
    uint32_t now = DWT_CYCCNT;
    if (now < dwt_last)
        ++dwt_high;
    dwt_last = now;
    uint64_t v = (uint64_t)dwt_high << 32 | now;
    ep_cm_irq_restore(irq);
    return v;
}

/* Branch-free on COUNTFLAG (set by a real wrap, clear when the exception was pended by
 * software), so the handler runs the same instructions either way: the QEMU port measures that
 * count once at boot by pending SysTick itself, and takes it out of its -icount counts. */
void SysTick_Handler(void)
{
    ep_cm_systick_wraps += (SYST_CSR & SYST_CSR_COUNTFLAG) >> 16;
    if (use_dwt)
        (void)dwt_read();
}

static int dwt_advances(void)
{
    SCB_DEMCR |= SCB_DEMCR_TRCENA;
    if (DWT_CTRL & DWT_CTRL_NOCYCCNT)
        return 0;
    DWT_LAR = 0xC5ACCE55u; /* the lock access register: needed on some parts, ignored on M4 */
    DWT_CYCCNT = 0;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
    uint32_t before = DWT_CYCCNT;
    for (volatile int i = 0; i < 64; ++i) {
    }
    return DWT_CYCCNT != before;
}

void ep_cm_cycles_init(int allow_dwt)
{
    use_dwt = allow_dwt && dwt_advances();
    if (use_dwt) {
        dwt_last = DWT_CYCCNT;
        dwt_high = 0;
    }
    SYST_CSR = 0;
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0; /* any write clears it: the count starts at the reload value */
    SYST_CSR = SYST_CSR_CLKSOURCE | SYST_CSR_TICKINT | SYST_CSR_ENABLE;
}

int ep_cm_cycles_dwt(void)
{
    return use_dwt;
}

uint64_t ep_cm_cycles(void)
{
    if (use_dwt)
        return dwt_read();
    uint32_t irq = ep_cm_irq_save();
    uint32_t wraps = ep_cm_systick_wraps;
    uint32_t v1 = SYST_CVR;
    uint32_t pending = SCB_ICSR & SCB_ICSR_PENDSTSET;
    uint32_t v2 = SYST_CVR;
    ep_cm_irq_restore(irq);
    return ep_cm_systick_count(wraps, v1, pending, v2);
}

uint64_t ep_cm_systick_count(uint32_t wraps, uint32_t v1, uint32_t pending, uint32_t v2)
{
    /* A wrap is the 1 -> 0 step (COUNTFLAG, the interrupt); 0 is the first value of a period
     * and RELOAD the second, so the ticks into the period are (2^24 - value) mod 2^24. A pending
     * wrap happened before v2 was read; v1 is past it too when its phase is not beyond v2's. */
    uint32_t p1 = (SYST_PERIOD - v1) & SYST_RELOAD, p2 = (SYST_PERIOD - v2) & SYST_RELOAD;
    wraps += (uint32_t)(pending != 0) & (uint32_t)(p1 <= p2);
    return (uint64_t)wraps << 24 | p1;
}

void ep_cm_system_reset(void)
{
    __asm__ volatile("dsb" ::: "memory");
    SCB_AIRCR = SCB_AIRCR_SYSRESETREQ;
    __asm__ volatile("dsb" ::: "memory");
    for (;;) {
    }
}

uint32_t ep_cm_mix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}
