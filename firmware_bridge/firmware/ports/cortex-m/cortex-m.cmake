# cortex-m.cmake - shared by the Cortex-M ports' port.cmake: flags, start-up code and the two
# executables every such port builds:
#   edgeprof-fw     the reference firmware: ports/cortex-m/main.c + the port's sources + the
#                   core and demo workloads (EP_CORE_SOURCES, or the library target ep_core, as
#                   the firmware CMakeLists.txt provides them) + the model library ep_model;
#   edgeprof-smoke  a bring-up firmware (ports/cortex-m/smoke.c) that needs only the port.
# Each ELF gets a .bin next to it (for flashing) and its size printed after the build.

set(EP_CM_DIR ${CMAKE_CURRENT_LIST_DIR})
set(EP_FW_DIR ${CMAKE_CURRENT_LIST_DIR}/../..)

if(NOT CMAKE_C_COMPILER MATCHES "arm-none-eabi")
  message(FATAL_ERROR "EP_PORT=${EP_PORT} needs the arm-none-eabi toolchain: configure with "
    "-DCMAKE_TOOLCHAIN_FILE=<repo>/cmake/arm-none-eabi.cmake (Debian: apt-get install "
    "--no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi)")
endif()

# Every Cortex-M port here is a Cortex-M4F. Appended to CMAKE_C_FLAGS (read at the end of the
# directory) so that every target of the firmware, ep_model included, is built for the core.
set(EP_CM_CPU_FLAGS "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16")
string(APPEND CMAKE_C_FLAGS " ${EP_CM_CPU_FLAGS} -ffunction-sections -fdata-sections")
string(APPEND CMAKE_ASM_FLAGS " ${EP_CM_CPU_FLAGS}")
if(NOT CMAKE_BUILD_TYPE)
  set(CMAKE_BUILD_TYPE MinSizeRel CACHE STRING "firmware build type" FORCE)
endif()

# ep_cm_firmware(NAME LDSCRIPT SOURCES...): one firmware ELF for this port.
function(ep_cm_firmware name ldscript)
  add_executable(${name} ${ARGN} ${EP_CM_DIR}/startup.c ${EP_CM_DIR}/cycles.c
    ${EP_CM_DIR}/sbrk.c)
  target_include_directories(${name} PRIVATE ${EP_FW_DIR}/include ${EP_CM_DIR})
  target_compile_options(${name} PRIVATE -Wall -Wextra)
  target_link_options(${name} PRIVATE -nostartfiles --specs=nano.specs --specs=nosys.specs
    -Wl,--gc-sections -Wl,-Map=$<TARGET_FILE_DIR:${name}>/${name}.map
    -L${EP_CM_DIR} -T${ldscript})
  set_target_properties(${name} PROPERTIES LINK_DEPENDS
    "${ldscript};${EP_CM_DIR}/cortex-m-sections.ld")
  add_custom_command(TARGET ${name} POST_BUILD
    COMMAND ${CMAKE_OBJCOPY} -O binary $<TARGET_FILE:${name}> $<TARGET_FILE_DIR:${name}>/${name}.bin
    COMMAND ${CMAKE_SIZE} $<TARGET_FILE:${name}>
    VERBATIM)
endfunction()

# ep_cm_port(LDSCRIPT SOURCES...): both executables of a port.
function(ep_cm_port ldscript)
  ep_cm_firmware(edgeprof-smoke ${ldscript} ${EP_CM_DIR}/smoke.c ${ARGN})
  if(NOT EP_CORE_SOURCES AND NOT TARGET ep_core)
    message(STATUS "edgeprof-fw: no core sources (EP_CORE_SOURCES / ep_core): only the smoke firmware")
    return()
  endif()
  ep_cm_firmware(edgeprof-fw ${ldscript} ${EP_CM_DIR}/main.c ${ARGN} ${EP_CORE_SOURCES})
  target_include_directories(edgeprof-fw PRIVATE ${EP_FW_DIR}/core)
  if(TARGET ep_core)
    target_link_libraries(edgeprof-fw PRIVATE ep_core)
  endif()
  if(TARGET ep_model)
    target_link_libraries(edgeprof-fw PRIVATE ep_model)
  endif()
endfunction()
