# The host port: the firmware as a Linux process serving a pty (tests, development).
add_executable(edgeprof-fw ${CMAKE_CURRENT_LIST_DIR}/host_port.c)
target_link_libraries(edgeprof-fw PRIVATE ep_core)
