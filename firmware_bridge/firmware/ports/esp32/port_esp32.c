/* port_esp32.c - ep_port.h over ESP-IDF (v5.x) for the ESP32 and ESP32-S3.
 *
 * Link: UART0 (the DevKitC's USB-UART bridge) at EP_BAUD, 8N1, through the IDF UART driver, whose
 * interrupt fills a 4 KiB ring so bytes arriving during a workload are kept; or, with
 * EP_ESP32_USB_SERIAL_JTAG, the ESP32-S3's native USB Serial/JTAG. Nothing else may write to
 * the link: set the console to another port (or none) and logging to none (README.md).
 * Counter: CCOUNT (esp_cpu_get_cycle_count), the core's own 32-bit cycle counter, which wraps
 * every 17.9 s at 240 MHz. It is extended to 64 bits against esp_timer's 64-bit microseconds:
 * the wraps since the last read are what the elapsed microseconds say, to within half a wrap.
 * CCOUNT is per core, so the protocol loop must stay on one core (app_main's task is pinned to
 * CPU0 by default; keep CONFIG_ESP_MAIN_TASK_AFFINITY_CPU0). Frequency scaling (power
 * management, DFS) must be off, or cycles stop meaning time.
 * Memory: the SoC's SRAM size, the flash chip's size (esp_flash); the stack region is the
 * calling task's FreeRTOS stack (app_main's).
 *
 * Not built or run on edgeprof's build machine (ESP-IDF is not installable there).
 */
#include <stddef.h>
#include <stdint.h>

#include "driver/uart.h"
#include "esp_cpu.h"
#include "esp_flash.h"
#include "esp_log.h"
#include "esp_random.h"
#include "esp_rom_sys.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "sdkconfig.h"

#include "edgeprof_esp32.h"
#include "ep_port.h"
#include "ep_workload.h"

#if defined(CONFIG_EDGEPROF_USB_SERIAL_JTAG) && !defined(EP_ESP32_USB_SERIAL_JTAG)
#define EP_ESP32_USB_SERIAL_JTAG 1
#endif
#if EP_ESP32_USB_SERIAL_JTAG
#include "driver/usb_serial_jtag.h"
#endif

#ifndef EP_BAUD
#define EP_BAUD 115200
#endif
#define EP_UART UART_NUM_0
#define EP_RX_RING 4096

static uint32_t boot_id;
static uint32_t cpu_hz;
static uint32_t cc_last;
static uint64_t cc_high;  /* cycles of the completed wraps */
static int64_t us_last;
static portMUX_TYPE cycles_lock = portMUX_INITIALIZER_UNLOCKED;
static uint8_t *stack_lo, *stack_hi;

void ep_port_init(void)
{
    esp_log_level_set("*", ESP_LOG_NONE);
    cpu_hz = esp_rom_get_cpu_ticks_per_us() * 1000000u;
#if EP_ESP32_USB_SERIAL_JTAG
    usb_serial_jtag_driver_config_t cfg = USB_SERIAL_JTAG_DRIVER_CONFIG_DEFAULT();
    cfg.rx_buffer_size = EP_RX_RING;
    ESP_ERROR_CHECK(usb_serial_jtag_driver_install(&cfg));
#else
    const uart_config_t cfg = {
        .baud_rate = EP_BAUD,
        .data_bits = UART_DATA_8_BITS,
        .parity = UART_PARITY_DISABLE,
        .stop_bits = UART_STOP_BITS_1,
        .flow_ctrl = UART_HW_FLOWCTRL_DISABLE,
        .source_clk = UART_SCLK_DEFAULT,
    };
    ESP_ERROR_CHECK(uart_driver_install(EP_UART, EP_RX_RING, 0, 0, NULL, 0));
    ESP_ERROR_CHECK(uart_param_config(EP_UART, &cfg));
#endif
    boot_id = esp_random() ^ ((uint32_t)esp_reset_reason() << 24);
    if (boot_id == 0)
        boot_id = 1;
    /* The calling task's stack, which must be app_main's (its size is the sdkconfig's): on
     * Xtensa it grows down from pxTaskGetStackStart() + size. */
    stack_lo = pxTaskGetStackStart(xTaskGetCurrentTaskHandle());
    stack_hi = stack_lo + CONFIG_ESP_MAIN_TASK_STACK_SIZE;
    cc_last = esp_cpu_get_cycle_count();
    us_last = esp_timer_get_time();
}

int ep_port_read(uint8_t *buf, size_t cap, uint32_t timeout_ms)
{
    if (cap == 0)
        return 0;
#if EP_ESP32_USB_SERIAL_JTAG
    int n = usb_serial_jtag_read_bytes(buf, 1, pdMS_TO_TICKS(timeout_ms));
    if (n <= 0)
        return n < 0 ? -1 : 0;
    if (cap > 1) {
        int more = usb_serial_jtag_read_bytes(buf + 1, cap - 1, 0);
        if (more > 0)
            n += more;
    }
    return n;
#else
    int n = uart_read_bytes(EP_UART, buf, 1, pdMS_TO_TICKS(timeout_ms));
    if (n <= 0)
        return n < 0 ? -1 : 0;
    size_t avail = 0;
    if (cap > 1 && uart_get_buffered_data_len(EP_UART, &avail) == ESP_OK && avail > 0) {
        int more = uart_read_bytes(EP_UART, buf + 1, avail < cap - 1 ? avail : cap - 1, 0);
        if (more < 0)
            return -1;
        n += more;
    }
    return n;
#endif
}

int ep_port_write(const uint8_t *buf, size_t len)
{
#if EP_ESP32_USB_SERIAL_JTAG
    while (len > 0) {
        int n = usb_serial_jtag_write_bytes(buf, len, pdMS_TO_TICKS(1000));
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
#else
    return uart_write_bytes(EP_UART, buf, len) == (int)len ? 0 : -1;
#endif
}

uint64_t ep_port_cycles(void)
{
    /* Read both clocks close together, neither preempted nor racing another caller. */
    portENTER_CRITICAL(&cycles_lock);
    uint32_t cc = esp_cpu_get_cycle_count();
    int64_t us = esp_timer_get_time();
    uint64_t expected = (uint64_t)(us - us_last) * (cpu_hz / 1000000u);
    uint64_t seen = (uint32_t)(cc - cc_last); /* elapsed modulo 2^32 */
    /* The whole wraps that elapsed: (expected - seen) / 2^32, rounded to the nearest. */
    uint64_t wraps = expected > seen ? (expected - seen + (1ull << 31)) >> 32 : 0;
    cc_high += (wraps << 32) + seen;
    cc_last = cc;
    us_last = us;
    uint64_t now = cc_high;
    portEXIT_CRITICAL(&cycles_lock);
    return now;
}

uint32_t ep_port_cycle_hz(void)
{
    return cpu_hz;
}

const char *ep_port_cycle_source(void)
{
    return "ccount";
}

uint32_t ep_port_millis(void)
{
    return (uint32_t)(esp_timer_get_time() / 1000);
}

const char *ep_port_board(void)
{
#if CONFIG_IDF_TARGET_ESP32S3
    return "esp32-s3-devkitc-1";
#else
    return "esp32-devkitc";
#endif
}

uint32_t ep_port_cpu_hz(void)
{
    return cpu_hz;
}

/* The SoC's internal SRAM, as in boards/<id>.toml (the heap is smaller: heap_caps tells how
 * much of it the application may allocate). */
uint32_t ep_port_ram_bytes(void)
{
#if CONFIG_IDF_TARGET_ESP32S3
    return 512u * 1024u;
#else
    return 520u * 1024u;
#endif
}

uint32_t ep_port_flash_bytes(void)
{
    uint32_t size = 0;
    return esp_flash_get_size(NULL, &size) == ESP_OK ? size : 0;
}

uint32_t ep_port_boot_id(void)
{
    return boot_id;
}

void ep_port_stack_region(uint8_t **lo, uint8_t **hi)
{
    *lo = stack_lo;
    *hi = stack_hi;
}

void ep_port_reset(void)
{
#if !EP_ESP32_USB_SERIAL_JTAG
    (void)uart_wait_tx_done(EP_UART, pdMS_TO_TICKS(100));
#endif
    esp_restart();
}

void ep_port_exit(int status)
{
    (void)status;
    ep_port_reset();
}

void edgeprof_esp32_main(void)
{
    ep_port_init();
    ep_main();
    ep_port_reset();
}
