# Cross-build for 64-bit Arm Linux with Debian's g++-aarch64-linux-gnu; the binaries (tests included, as
# ctest runs them) run under qemu-user (Debian's qemu-user-static) with the CPU model in TS_QEMU_CPU.
# Used by scripts/test-arm.sh:  cmake -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake ...
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
# Header-only dependencies (nlohmann_json, CLI11) come from the build machine's /usr/include.
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
if(NOT DEFINED TS_QEMU_CPU)
  set(TS_QEMU_CPU max)
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static -cpu ${TS_QEMU_CPU} -L /usr/aarch64-linux-gnu)
