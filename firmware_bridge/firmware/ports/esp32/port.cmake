# The ESP32 port is an ESP-IDF component (CMakeLists.txt here, built by idf.py), not a port of
# this CMake project: see README.md.
message(FATAL_ERROR "EP_PORT=esp32 is built by ESP-IDF: add firmware_bridge/firmware/ports/esp32 "
  "to your IDF project's EXTRA_COMPONENT_DIRS (firmware_bridge/firmware/ports/esp32/README.md)")
