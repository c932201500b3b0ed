# Cross-compile the reference firmware for bare-metal Arm (Cortex-M) with Debian's
# gcc-arm-none-eabi + libnewlib-arm-none-eabi. CPU flags (-mcpu, FPU) belong to each port's
# port.cmake, since one toolchain serves several cores; this file only names the tools.
#   cmake -S firmware_bridge/firmware -B build-fw-qemu-mps2-an386 \
#         -DEP_PORT=qemu-mps2-an386 -DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi.cmake
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
set(CMAKE_OBJCOPY arm-none-eabi-objcopy CACHE FILEPATH "objcopy for firmware images")
set(CMAKE_SIZE arm-none-eabi-size CACHE FILEPATH "size for text/data/bss")

# There is no OS to link a test program against: let CMake's compiler checks build a library.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_EXECUTABLE_SUFFIX_C .elf)

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
