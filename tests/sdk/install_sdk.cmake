# sdk_install: installs the build tree BUILD_DIR into PREFIX (emptied first) and checks
# what the package holds.  cmake -DBUILD_DIR= -DPREFIX= -DSOURCE_DIR= -P install_sdk.cmake
cmake_minimum_required(VERSION 3.20)
file(REMOVE_RECURSE "${PREFIX}")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install ${BUILD_DIR} --prefix ${PREFIX} failed (${rc}):\n${out}\n${err}\n"
                      "hint: the install needs the whole project built (cmake --build ${BUILD_DIR})")
endif()

function(expect_file path)
  if(NOT EXISTS "${PREFIX}/${path}")
    message(FATAL_ERROR "the install has no ${path}")
  endif()
endfunction()

# The public headers, exactly those of sdk/include/graft.
file(GLOB source_headers RELATIVE "${SOURCE_DIR}/sdk/include/graft" "${SOURCE_DIR}/sdk/include/graft/*.h")
file(GLOB installed_headers RELATIVE "${PREFIX}/include/graft" "${PREFIX}/include/graft/*")
list(SORT source_headers)
list(SORT installed_headers)
if(NOT source_headers STREQUAL installed_headers)
  message(FATAL_ERROR "installed headers '${installed_headers}' differ from sdk/include/graft: '${source_headers}'")
endif()

foreach(f lib/libgraft.so lib/libgraft.so.0 bin/graft lib/cmake/graft/graftConfig.cmake
          lib/cmake/graft/graftConfigVersion.cmake lib/cmake/graft/graftTargets.cmake lib/cmake/graft/graftPlugin.cmake)
  expect_file(${f})
endforeach()

# The shipped plugins: every plugin of the build tree, and at least one.
file(GLOB shipped RELATIVE "${PREFIX}/lib/graft/plugins" "${PREFIX}/lib/graft/plugins/libgraft_*.so")
file(GLOB built RELATIVE "${BUILD_DIR}/plugins" "${BUILD_DIR}/plugins/libgraft_*.so")
if(NOT shipped)
  message(FATAL_ERROR "no plugin was installed in ${PREFIX}/lib/graft/plugins")
endif()
foreach(p ${built})
  if(NOT p IN_LIST shipped)
    message(FATAL_ERROR "${p} is built but not installed in lib/graft/plugins")
  endif()
endforeach()

# graft::graft's interface: fmt alone, nothing of libgraft's private
# dependencies; and no path into the source or build tree anywhere in the package.
file(READ "${PREFIX}/lib/cmake/graft/graftTargets.cmake" targets)
string(REGEX MATCH "INTERFACE_LINK_LIBRARIES \"([^\"]*)\"" _ "${targets}")
if(NOT CMAKE_MATCH_1 STREQUAL "fmt::fmt")
  message(FATAL_ERROR "graft::graft links '${CMAKE_MATCH_1}', expected 'fmt::fmt'")
endif()
foreach(private dnnl nlohmann OpenMP utf8proc)
  string(REGEX MATCH "INTERFACE_[A-Z_]+ \"[^\"]*${private}" leak "${targets}")
  if(leak)
    message(FATAL_ERROR "graftTargets.cmake leaks a private dependency: ${leak}")
  endif()
endforeach()
file(GLOB package_files "${PREFIX}/lib/cmake/graft/*.cmake")
foreach(f ${package_files})
  file(READ "${f}" text)
  foreach(tree "${SOURCE_DIR}/" "${BUILD_DIR}/")
    string(FIND "${text}" "${tree}" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "${f} refers to ${tree}: the package must stand on its own")
    endif()
  endforeach()
endforeach()

# The installed command finds the installed libgraft ($ORIGIN/../lib).
find_program(READELF readelf)
if(READELF)
  execute_process(COMMAND "${READELF}" -d "${PREFIX}/bin/graft" OUTPUT_VARIABLE dynamic)
  if(NOT dynamic MATCHES "R(UN)?PATH\\)[^\n]*\\[\\$ORIGIN/\\.\\./lib\\]")
    message(FATAL_ERROR "bin/graft has no RUNPATH \$ORIGIN/../lib:\n${dynamic}")
  endif()
endif()
message(STATUS "installed into ${PREFIX}: headers ${installed_headers}; plugins ${shipped}")
