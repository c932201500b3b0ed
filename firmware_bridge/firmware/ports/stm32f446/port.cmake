# port.cmake for the ST NUCLEO-F446RE (STM32F446RE): included by the firmware CMakeLists.txt when
# EP_PORT=stm32f446. Flash edgeprof-fw.bin at 0x08000000 (e.g. copy it to the Nucleo's
# mass-storage drive, or st-flash write edgeprof-fw.bin 0x08000000). Not run on the build machine.
include(${CMAKE_CURRENT_LIST_DIR}/../cortex-m/cortex-m.cmake)
ep_cm_port(${CMAKE_CURRENT_LIST_DIR}/stm32f446.ld ${CMAKE_CURRENT_LIST_DIR}/port.c)
set(EP_STM32_BAUD 115200 CACHE STRING "USART2 baud rate (the ST-LINK VCP)")
foreach(t edgeprof-smoke edgeprof-fw)
  if(TARGET ${t})
    target_compile_definitions(${t} PRIVATE EP_BAUD=${EP_STM32_BAUD}u)
  endif()
endforeach()
# 128 KiB of SRAM: a model of up to 56 KiB in the RAM slot (ds_cnn_int8 fits, kws_mlp_int8 does
# not), 40 KiB of workload heap, 2 KiB frames.
if(TARGET ep_core)
  target_compile_definitions(ep_core PRIVATE EP_MAX_PAYLOAD=2048 EP_MODEL_CAP=57344
    EP_INPUT_CAP=4096 EP_HEAP_BYTES=40960)
endif()
