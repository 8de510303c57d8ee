# sdk_ia3_build: configures sdk/examples/ia3 as a project of its own, against the
# installed SDK in PREFIX only, and builds it into BUILD_DIR (emptied first).
#   cmake -DPREFIX= -DEXAMPLE_DIR= -DBUILD_DIR= -DGRAFT_SOURCE_DIR= -DGRAFT_BUILD_DIR=
#         [-DCXX_COMPILER=] [-DCOMPILER_LAUNCHER=] -P build_example.cmake
cmake_minimum_required(VERSION 3.20)
file(REMOVE_RECURSE "${BUILD_DIR}")
set(ENV{CMAKE_PREFIX_PATH} "")
set(args -S "${EXAMPLE_DIR}" -B "${BUILD_DIR}" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=${PREFIX}"
         -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(CXX_COMPILER)
  list(APPEND args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")  # a plugin needs libgraft's compiler
endif()
if(COMPILER_LAUNCHER)
  list(APPEND args "-DCMAKE_CXX_COMPILER_LAUNCHER=${COMPILER_LAUNCHER}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring ${EXAMPLE_DIR} against ${PREFIX} failed:\n${out}\n${err}")
endif()
if(err MATCHES "Warning")
  message(FATAL_ERROR "configuring ${EXAMPLE_DIR} warned:\n${err}")
endif()

# find_package(graft) found the installed package, not anything else.
file(STRINGS "${BUILD_DIR}/CMakeCache.txt" graft_dir REGEX "^graft_DIR:")
if(NOT graft_dir STREQUAL "graft_DIR:PATH=${PREFIX}/lib/cmake/graft")
  message(FATAL_ERROR "find_package(graft) found '${graft_dir}', not ${PREFIX}/lib/cmake/graft")
endif()

execute_process(COMMAND "${CMAKE_COMMAND}" --build "${BUILD_DIR}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building ${EXAMPLE_DIR} failed:\n${out}\n${err}")
endif()
if(NOT EXISTS "${BUILD_DIR}/plugins/libgraft_ia3.so")
  message(FATAL_ERROR "the build made no ${BUILD_DIR}/plugins/libgraft_ia3.so")
endif()

# Compiled and linked against the prefix: no include path or library of graft's trees.
file(GLOB_RECURSE lines "${BUILD_DIR}/CMakeFiles/ia3.dir/flags.make" "${BUILD_DIR}/CMakeFiles/ia3.dir/link.txt")
foreach(f ${lines})
  file(READ "${f}" text)
  foreach(tree "${GRAFT_SOURCE_DIR}/sdk/include" "${GRAFT_SOURCE_DIR}/framework" "${GRAFT_BUILD_DIR}/framework"
               "${GRAFT_BUILD_DIR}/lib")
    string(FIND "${text}" "${tree}" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "${f} refers to graft's tree (${tree}):\n${text}")
    endif()
  endforeach()
endforeach()
message(STATUS "built ${BUILD_DIR}/plugins/libgraft_ia3.so against ${PREFIX}")
