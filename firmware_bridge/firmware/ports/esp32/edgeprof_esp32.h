/* edgeprof_esp32.h - start the edgeprof firmware from an ESP-IDF app_main. */
#ifndef EDGEPROF_ESP32_H
#define EDGEPROF_ESP32_H

/* Bring up the link (UART0, or the ESP32-S3's USB Serial/JTAG with
 * CONFIG_EDGEPROF_USB_SERIAL_JTAG / -DEP_ESP32_USB_SERIAL_JTAG=1), then run the protocol loop
 * on the calling task; never returns. Register your own workloads before calling it. */
void edgeprof_esp32_main(void);

#endif
