// The plugin ABI. A plugin is a shared library linked to libgraft that exports one
// C-ABI entry, `graft_plugin_entry` (a BOOST_DLL_ALIAS), returning a pointer to a plain
// GraftPluginInfo. The host checks abi_version and struct_size before touching
// anything else in it, and keeps the library loaded while any object it made lives.
//
//   static graft::PeftMethod* create(const graft::Config& c) { return new MyMethod(c); }
//   GRAFT_PLUGIN("my_method", "1.0.0", "what it does", kSchemaJson, create)
#pragma once
#include <boost/dll/alias.hpp>
#include <cstdint>

#include "graft/config.h"
#include "graft/peft.h"

#define GRAFT_PLUGIN_ABI_VERSION 1u

extern "C" {

struct GraftPluginInfo {
  std::uint32_t abi_version;  // GRAFT_PLUGIN_ABI_VERSION the plugin was built against
  std::uint32_t struct_size;  // sizeof(GraftPluginInfo) as the plugin saw it
  const char* name;           // unique: --method NAME
  const char* version;
  const char* description;
  const char* config_schema;  // JSON Schema (object, properties with type/default/minimum/maximum/enum/description)
  // Creates a method from a validated config; the host destroys it with `destroy`.
  graft::PeftMethod* (*create)(const graft::Config* config);
  void (*destroy)(graft::PeftMethod* method);
};

using GraftPluginEntry = const GraftPluginInfo*();
}

#define GRAFT_PLUGIN_ENTRY_SYMBOL "graft_plugin_entry"

// Defines and exports (with BOOST_DLL_ALIAS) the entry of a plugin.
// CREATE: a function graft::PeftMethod*(const graft::Config&).
#define GRAFT_PLUGIN(NAME, VERSION, DESCRIPTION, SCHEMA, CREATE)                                  \
  namespace {                                                                                     \
  const GraftPluginInfo* graft_plugin_entry_impl() {                                              \
    static const GraftPluginInfo info = {                                                          \
        GRAFT_PLUGIN_ABI_VERSION, sizeof(GraftPluginInfo), NAME, VERSION, DESCRIPTION, SCHEMA,      \
        [](const graft::Config* c) -> graft::PeftMethod* { return CREATE(*c); },                    \
        [](graft::PeftMethod* m) { delete m; }};                                                   \
    return &info;                                                                                  \
  }                                                                                               \
  }                                                                                               \
  BOOST_DLL_ALIAS(graft_plugin_entry_impl, graft_plugin_entry)
