# port.cmake for QEMU's mps2-an386 (Cortex-M4): included by the firmware CMakeLists.txt when
# EP_PORT=qemu-mps2-an386. Run the result with edgeprof.bridge.qemu (or see
# docs/firmware-ports.md for the qemu-system-arm command line).
include(${CMAKE_CURRENT_LIST_DIR}/../cortex-m/cortex-m.cmake)
ep_cm_port(${CMAKE_CURRENT_LIST_DIR}/mps2_an386.ld ${CMAKE_CURRENT_LIST_DIR}/port.c)
target_include_directories(edgeprof-smoke PRIVATE ${CMAKE_CURRENT_LIST_DIR})
if(TARGET edgeprof-fw)
  target_include_directories(edgeprof-fw PRIVATE ${CMAKE_CURRENT_LIST_DIR})
endif()
# 4 MiB of RAM: room for the larger demo model (kws_mlp_int8) in the RAM slot.
if(TARGET ep_core)
  target_compile_definitions(ep_core PRIVATE EP_MAX_PAYLOAD=4096 EP_MODEL_CAP=1048576
    EP_INPUT_CAP=65536 EP_HEAP_BYTES=1048576)
endif()
