/* startup.c - vector table and reset handler shared by the Cortex-M ports.
 *
 * Only the 16 core exceptions are in the table: the ports poll their UART, and SysTick (the
 * cycle counter's wrap) is the one interrupt they take. A fault never spins silently: it goes to
 * ep_cm_fatal, so under QEMU the harness sees an exit status instead of a hang.
 */
#include <stdint.h>
#include <string.h>

#include "cortex_m.h"

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[];
extern void (*__preinit_array_start[])(void), (*__preinit_array_end[])(void);
extern void (*__init_array_start[])(void), (*__init_array_end[])(void);

void Reset_Handler(void) __attribute__((noreturn));
void ep_cm_default_handler(void);
void NMI_Handler(void) __attribute__((weak, alias("ep_cm_default_handler")));
void MemManage_Handler(void) __attribute__((weak, alias("ep_cm_default_handler")));
void BusFault_Handler(void) __attribute__((weak, alias("ep_cm_default_handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("ep_cm_default_handler")));
void SVC_Handler(void) __attribute__((weak, alias("ep_cm_default_handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("ep_cm_default_handler")));
void PendSV_Handler(void) __attribute__((weak, alias("ep_cm_default_handler")));
void HardFault_Handler(void) __attribute__((naked));
void SysTick_Handler(void);
void ep_cm_hardfault_c(uint32_t *frame);

typedef void (*ep_vector)(void);

__attribute__((section(".isr_vector"), used)) static const ep_vector vectors[16] = {
    (ep_vector)(uintptr_t)__stack_hi,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0,
    0,
    0,
    0,
    SVC_Handler,
    DebugMon_Handler,
    0,
    PendSV_Handler,
    SysTick_Handler,
};

void Reset_Handler(void)
{
    size_t data_len = (size_t)((uintptr_t)__data_end - (uintptr_t)__data_start);
    size_t bss_len = (size_t)((uintptr_t)__bss_end - (uintptr_t)__bss_start);
    if (data_len)
        memcpy(__data_start, __data_load, data_len);
    if (bss_len)
        memset(__bss_start, 0, bss_len);
    /* Full access to CP10/CP11 (the FPU): the build uses the hard-float ABI. */
    SCB_CPACR |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    for (void (**f)(void) = __preinit_array_start; f < __preinit_array_end; ++f)
        (*f)();
    for (void (**f)(void) = __init_array_start; f < __init_array_end; ++f)
        (*f)();
    (void)main();
    ep_cm_fatal(0xE0u);
}

void ep_cm_default_handler(void)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    ep_cm_fatal(0xF0u | (ipsr & 0xFu));
}

/* A semihosting call (BKPT 0xAB) with no debugger or emulator to serve it faults here: return
 * -1 to the caller, as an unserved call, instead of dying. Anything else is fatal. */
void HardFault_Handler(void)
{
    __asm__ volatile("tst lr, #4\n\t"
                     "ite eq\n\t"
                     "mrseq r0, msp\n\t"
                     "mrsne r0, psp\n\t"
                     "b ep_cm_hardfault_c\n\t");
}

void ep_cm_hardfault_c(uint32_t *frame)
{
    uint16_t insn = *(const volatile uint16_t *)(uintptr_t)frame[6];
    if (insn == 0xBEABu) {
        frame[0] = (uint32_t)-1; /* r0: the call's result */
        frame[6] += 2;           /* pc: past the BKPT */
        return;
    }
    ep_cm_fatal(0xF3u);
}
