# GRAFT_BUILD_FUZZ=ON: every target of the build is compiled for libFuzzer with
# AddressSanitizer and UndefinedBehaviorSanitizer (libgraft, the backbones inside it,
# the plugins), assertions kept on whatever the build type; the fuzz targets in
# tests/fuzz link libFuzzer's main. Included before any target is defined.
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "GRAFT_BUILD_FUZZ needs clang for libFuzzer: configure with -DCMAKE_CXX_COMPILER=clang++-14 "
                      "(make fuzz does)")
endif()
add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
                    -O1 -g -UNDEBUG)
add_link_options(-fsanitize=address,undefined)
