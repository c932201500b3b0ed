/* port.c - ep_port.h for the ST NUCLEO-F446RE (STM32F446RE, Cortex-M4F), register level.
 *
 * Clock: HSI (16 MHz) -> PLL (M 8, N 180, P 2) -> 180 MHz SYSCLK with over-drive, flash 5 wait
 * states, APB1 45 MHz, APB2 90 MHz (RM0390, 6.3 and 5.1.4). HSI needs no solder bridge: the
 * Nucleo's 8 MHz MCO from the ST-LINK is not relied on.
 * Link: USART2 on PA2/PA3 (AF7), wired to the ST-LINK/V2-1 virtual COM port; 8N1 at EP_BAUD
 * (default 115200). Reception is interrupt-driven into a ring buffer, so bytes that arrive
 * while a workload runs are kept (the USART itself holds one byte).
 * Counter: DWT CYCCNT at the core clock, extended to 64 bits by the SysTick wrap interrupt.
 * Boot id: a counter in the last 64 bytes of SRAM (no section: never cleared by start-up),
 * mixed with the 96-bit device id and the reset flags; at power-on the counter starts from
 * whatever the SRAM held, which differs from board to board and power cycle to power cycle.
 *
 * Built here with arm-none-eabi-gcc; never run here (no board on the build machine).
 */
#include <stddef.h>
#include <stdint.h>

#include "cortex_m.h"
#include "ep_port.h"

#ifndef EP_BAUD
#define EP_BAUD 115200u
#endif

#define HSI_HZ 16000000u
#define CPU_HZ 180000000u
#define APB1_HZ (CPU_HZ / 4u)

/* RCC (RM0390 6.3). */
#define RCC_BASE 0x40023800u
#define RCC_CR EP_REG32(RCC_BASE + 0x00u)
#define RCC_PLLCFGR EP_REG32(RCC_BASE + 0x04u)
#define RCC_CFGR EP_REG32(RCC_BASE + 0x08u)
#define RCC_AHB1ENR EP_REG32(RCC_BASE + 0x30u)
#define RCC_APB1ENR EP_REG32(RCC_BASE + 0x40u)
#define RCC_CSR EP_REG32(RCC_BASE + 0x74u)
#define RCC_CR_HSION (1u << 0)
#define RCC_CR_HSIRDY (1u << 1)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
#define RCC_CFGR_SW_PLL 2u
#define RCC_CFGR_SWS_MASK (3u << 2)
#define RCC_CFGR_SWS_PLL (2u << 2)
#define RCC_CFGR_PPRE1_DIV4 (5u << 10)
#define RCC_CFGR_PPRE2_DIV2 (4u << 13)
#define RCC_AHB1ENR_GPIOAEN (1u << 0)
#define RCC_APB1ENR_USART2EN (1u << 17)
#define RCC_APB1ENR_PWREN (1u << 28)
#define RCC_CSR_RMVF (1u << 24)

/* PWR (RM0390 5.4). */
#define PWR_CR EP_REG32(0x40007000u)
#define PWR_CSR EP_REG32(0x40007004u)
#define PWR_CR_VOS_SCALE1 (3u << 14)
#define PWR_CR_ODEN (1u << 16)
#define PWR_CR_ODSWEN (1u << 17)
#define PWR_CSR_ODRDY (1u << 16)
#define PWR_CSR_ODSWRDY (1u << 17)

/* Flash interface (RM0390 3.8). */
#define FLASH_ACR EP_REG32(0x40023C00u)
#define FLASH_ACR_LATENCY_5WS 5u
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ICEN (1u << 9)
#define FLASH_ACR_DCEN (1u << 10)

/* GPIOA (RM0390 7.4). */
#define GPIOA_BASE 0x40020000u
#define GPIOA_MODER EP_REG32(GPIOA_BASE + 0x00u)
#define GPIOA_OSPEEDR EP_REG32(GPIOA_BASE + 0x08u)
#define GPIOA_PUPDR EP_REG32(GPIOA_BASE + 0x0Cu)
#define GPIOA_AFRL EP_REG32(GPIOA_BASE + 0x20u)

/* USART2 (RM0390 25.6). */
#define USART2_BASE 0x40004400u
#define USART_SR EP_REG32(USART2_BASE + 0x00u)
#define USART_DR EP_REG32(USART2_BASE + 0x04u)
#define USART_BRR EP_REG32(USART2_BASE + 0x08u)
#define USART_CR1 EP_REG32(USART2_BASE + 0x0Cu)
#define USART_SR_ORE (1u << 3)
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TXE (1u << 7)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_RXNEIE (1u << 5)
#define USART_CR1_UE (1u << 13)
#define USART2_IRQN 38u
#define NVIC_ISER(n) EP_REG32(0xE000E100u + 4u * (n))

/* 96-bit unique device id (RM0390 34.1). */
#define UID_BASE 0x1FFF7A10u

#define RX_RING 1024u /* a power of two */

extern uint32_t __ep_noinit[];
#define NOINIT_MAGIC 0x45504254u /* "EPBT" */

static volatile uint8_t rx_ring[RX_RING];
static volatile uint32_t rx_head, rx_tail; /* head: written by the interrupt */
static volatile uint32_t rx_overruns;
static uint32_t boot_id;

void USART2_IRQHandler(void);

/* Device interrupts 0..USART2_IRQN; only USART2 is used. */
__attribute__((section(".isr_vector.irq"), used)) static void (*const irq_vectors[USART2_IRQN +
                                                                                  1])(void) = {
    [USART2_IRQN] = USART2_IRQHandler,
};

void USART2_IRQHandler(void)
{
    uint32_t sr = USART_SR;
    if (sr & (USART_SR_RXNE | USART_SR_ORE)) {
        uint8_t b = (uint8_t)USART_DR; /* reading SR then DR also clears ORE */
        if (sr & USART_SR_ORE)
            ++rx_overruns;
        uint32_t head = rx_head;
        if (head - rx_tail < RX_RING) {
            rx_ring[head & (RX_RING - 1u)] = b;
            rx_head = head + 1u;
        } else {
            ++rx_overruns;
        }
    }
}

static void clock_init(void)
{
    RCC_CR |= RCC_CR_HSION;
    while (!(RCC_CR & RCC_CR_HSIRDY)) {
    }
    RCC_APB1ENR |= RCC_APB1ENR_PWREN;
    (void)RCC_APB1ENR;
    PWR_CR |= PWR_CR_VOS_SCALE1; /* VOS may change only while the PLL is off */
    /* PLL input 16 MHz / M 8 = 2 MHz; VCO x N 180 = 360 MHz; / P 2 = 180 MHz; Q 8, R 2 unused. */
    RCC_PLLCFGR = 8u << 0 | 180u << 6 | 0u << 16 | 0u << 22 | 8u << 24 | 2u << 28;
    RCC_CR |= RCC_CR_PLLON;
    PWR_CR |= PWR_CR_ODEN; /* over-drive: needed above 168 MHz */
    while (!(PWR_CSR & PWR_CSR_ODRDY)) {
    }
    PWR_CR |= PWR_CR_ODSWEN;
    while (!(PWR_CSR & PWR_CSR_ODSWRDY)) {
    }
    FLASH_ACR = FLASH_ACR_LATENCY_5WS | FLASH_ACR_PRFTEN | FLASH_ACR_ICEN | FLASH_ACR_DCEN;
    while ((FLASH_ACR & 0xFu) != FLASH_ACR_LATENCY_5WS) {
    }
    RCC_CFGR = RCC_CFGR_PPRE1_DIV4 | RCC_CFGR_PPRE2_DIV2; /* AHB /1 */
    while (!(RCC_CR & RCC_CR_PLLRDY)) {
    }
    RCC_CFGR = (RCC_CFGR & ~3u) | RCC_CFGR_SW_PLL;
    while ((RCC_CFGR & RCC_CFGR_SWS_MASK) != RCC_CFGR_SWS_PLL) {
    }
}

static void usart_init(void)
{
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN;
    RCC_APB1ENR |= RCC_APB1ENR_USART2EN;
    (void)RCC_APB1ENR;
    /* PA2 (TX), PA3 (RX): alternate function 7, high speed, RX pulled up. */
    GPIOA_MODER = (GPIOA_MODER & ~(0xFu << 4)) | (0xAu << 4);
    GPIOA_OSPEEDR |= 0xFu << 4;
    GPIOA_PUPDR = (GPIOA_PUPDR & ~(0xFu << 4)) | (0x4u << 4);
    GPIOA_AFRL = (GPIOA_AFRL & ~(0xFFu << 8)) | (0x77u << 8);
    /* Oversampling by 16: BRR = mantissa.fraction(4 bits) of APB1 / (16 baud), rounded. */
    USART_BRR = (APB1_HZ + EP_BAUD / 2u) / EP_BAUD;
    USART_CR1 = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE;
    NVIC_ISER(USART2_IRQN / 32u) = 1u << (USART2_IRQN % 32u);
}

static uint32_t make_boot_id(void)
{
    volatile uint32_t *ni = __ep_noinit;
    if (ni[0] != NOINIT_MAGIC) {
        /* Power-on: SRAM holds noise; keep it as the counter's start. */
        ni[1] = ep_cm_mix32(ni[1] ^ ni[2] ^ ni[3]);
        ni[0] = NOINIT_MAGIC;
    }
    ni[1] = ni[1] + 1u;
    uint32_t h = ni[1];
    for (uint32_t i = 0; i < 3; ++i)
        h = ep_cm_mix32(h ^ EP_REG32(UID_BASE + 4u * i));
    h = ep_cm_mix32(h ^ RCC_CSR);
    RCC_CSR |= RCC_CSR_RMVF;
    return h ? h : 1u;
}

void ep_port_init(void)
{
    clock_init();
    boot_id = make_boot_id();
    ep_cm_cycles_init(1);
    usart_init();
}

int ep_port_read(uint8_t *buf, size_t cap, uint32_t timeout_ms)
{
    uint32_t start = ep_port_millis();
    while (rx_head == rx_tail) {
        if (ep_port_millis() - start >= timeout_ms)
            return 0;
    }
    size_t n = 0;
    uint32_t tail = rx_tail;
    while (n < cap && tail != rx_head) {
        buf[n++] = rx_ring[tail & (RX_RING - 1u)];
        ++tail;
    }
    rx_tail = tail;
    /* Lost bytes (rx_overruns) are caught by the frames' CRC and retransmitted: no link failure,
     * which a negative return would mean (it ends the core's main loop). */
    return (int)n;
}

int ep_port_write(const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        while (!(USART_SR & USART_SR_TXE)) {
        }
        USART_DR = buf[i];
    }
    return 0;
}

uint64_t ep_port_cycles(void)
{
    return ep_cm_cycles();
}

uint32_t ep_port_cycle_hz(void)
{
    return CPU_HZ;
}

const char *ep_port_cycle_source(void)
{
    return ep_cm_cycles_dwt() ? "dwt-cyccnt" : "systick";
}

uint32_t ep_port_millis(void)
{
    return (uint32_t)(ep_cm_cycles() / (CPU_HZ / 1000u));
}

const char *ep_port_board(void)
{
    return "stm32f446-nucleo";
}

uint32_t ep_port_cpu_hz(void)
{
    return CPU_HZ;
}

uint32_t ep_port_ram_bytes(void)
{
    return 128u * 1024u;
}

uint32_t ep_port_flash_bytes(void)
{
    return 512u * 1024u;
}

uint32_t ep_port_boot_id(void)
{
    return boot_id;
}

void ep_port_stack_region(uint8_t **lo, uint8_t **hi)
{
    *lo = __stack_lo;
    *hi = __stack_hi;
}

void ep_port_reset(void)
{
    /* Let the last reply leave the USART before the reset cuts it off. */
    while (!(USART_SR & (1u << 6))) { /* TC */
    }
    ep_cm_system_reset();
}

void ep_port_exit(int status)
{
    (void)status;
    ep_port_reset();
}

void ep_cm_fatal(uint32_t code)
{
    (void)code;
    ep_cm_system_reset();
}
