# graft_add_plugin(NAME source...) — builds a PEFT plugin: a MODULE library named
# libgraft_NAME.so, linked to libgraft, exporting only its entry (hidden visibility),
# placed where graft's plugin search path finds it.
#
# In graft's own tree the output goes to <build>/plugins (the build-tree plugin dir);
# out of tree, to ${CMAKE_BINARY_DIR}/plugins unless GRAFT_PLUGIN_OUTPUT_DIR is set:
# point `graft --plugin-dir` or GRAFT_PLUGIN_PATH there.
function(graft_add_plugin name)
  if(NOT ARGN)
    message(FATAL_ERROR "graft_add_plugin(${name}) needs source files")
  endif()
  if(NOT DEFINED GRAFT_PLUGIN_OUTPUT_DIR)
    set(GRAFT_PLUGIN_OUTPUT_DIR ${CMAKE_BINARY_DIR}/plugins)
  endif()
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE graft::graft)
  target_compile_features(${name} PRIVATE cxx_std_20)
  # -fno-gnu-unique: function-local statics in inline code would otherwise pin the
  # library in memory for the life of the process, defeating unloading (GCC only:
  # clang never emits STB_GNU_UNIQUE symbols and has no such flag).
  target_compile_options(${name} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-fno-gnu-unique>)
  set_target_properties(${name} PROPERTIES
    PREFIX "libgraft_"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY ${GRAFT_PLUGIN_OUTPUT_DIR})
  # Every plugin of the project, for targets that need them all built (tests).
  if(NOT TARGET graft_all_plugins)
    add_custom_target(graft_all_plugins)
  endif()
  add_dependencies(graft_all_plugins ${name})
endfunction()
