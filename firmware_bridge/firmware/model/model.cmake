# The int8 model interpreter (include/ep_model.h) as the static library ep_model.
#
# Included by the firmware's CMakeLists.txt for every port. Portable C99 with only include/ on
# its include path and no libc beyond string.h/stdint.h/stddef.h. On the host port it also
# builds ep_model_run (runs a blob over inputs on stdin; tests/test_firmware_kernels.py) and,
# with EP_FUZZ=ON, the libFuzzer target fuzz_model_blob for the blob parser and kernels.
set(EP_MODEL_DIR ${CMAKE_CURRENT_LIST_DIR})
add_library(ep_model STATIC
  ${EP_MODEL_DIR}/ep_model.c
  ${EP_MODEL_DIR}/ep_kernels.c
  ${EP_MODEL_DIR}/ep_f32.c)
target_include_directories(ep_model PUBLIC ${EP_MODEL_DIR}/../include)
set_target_properties(ep_model PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(ep_model PRIVATE -Wall -Wextra)
endif()

if(EP_PORT STREQUAL "host")
  add_executable(ep_model_run ${EP_MODEL_DIR}/run_blob.c)
  target_link_libraries(ep_model_run PRIVATE ep_model)
  if(EP_FUZZ)
    add_executable(fuzz_model_blob ${EP_MODEL_DIR}/fuzz_blob.c ${EP_MODEL_DIR}/ep_model.c
      ${EP_MODEL_DIR}/ep_kernels.c ${EP_MODEL_DIR}/ep_f32.c)
    target_include_directories(fuzz_model_blob PRIVATE ${EP_MODEL_DIR}/../include)
    target_compile_options(fuzz_model_blob PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(fuzz_model_blob PRIVATE -fsanitize=fuzzer,address,undefined)
  endif()
endif()
