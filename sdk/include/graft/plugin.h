// The plugin ABI, version 2. A plugin is a shared library linked to libgraft that
// exports one plain C function, `graft_peft_plugin`, returning a pointer to a static
// GraftPluginInfo. Its first three fields never change: the host reads abi_major,
// abi_minor and struct_size before anything else. Within a major version fields are
// only ever appended (a newer minor adds some at the end; a host reads the fields it
// knows and a struct_size tells it which exist), and optional capabilities are found
// through `extension(id)` (as CLAP does), so a plugin of a newer minor loads in an older
// host and the other way round. A plugin of another major version is refused with both
// versions named, and so is an ABI 1 plugin (which exported `graft_plugin_entry`).
//
//   static graft::PeftMethod* create(const graft::Config& c) { return new MyMethod(c); }
//   GRAFT_PLUGIN("my_method", "1.0.0", "what it does", kSchemaJson, create,
//                .peft_types = "MY_METHOD", .default_lr = 1e-3)
//
// The trailing designated initialisers (in field order) fill the metadata; all optional.
#pragma once
#include <cstdint>

#include "graft/config.h"
#include "graft/peft.h"

#define GRAFT_PLUGIN_ABI_MAJOR 2u
#define GRAFT_PLUGIN_ABI_MINOR 1u  // 2.1: SiteKind::norm, AdapterHook::norm

extern "C" {

struct GraftPluginInfo {
  // ---- fixed for every ABI version ----
  std::uint32_t abi_major;    // GRAFT_PLUGIN_ABI_MAJOR the plugin was built against
  std::uint32_t abi_minor;    // GRAFT_PLUGIN_ABI_MINOR
  std::uint32_t struct_size;  // sizeof(GraftPluginInfo) as the plugin saw it
  // ---- 2.0 ----
  const char* name;           // unique: --method NAME
  const char* version;
  const char* description;
  const char* config_schema;  // JSON Schema (object, properties with type/default/minimum/maximum/enum/description)
  // Creates a method from a validated config; the host destroys it with `destroy`.
  graft::PeftMethod* (*create)(const graft::Config* config);
  void (*destroy)(graft::PeftMethod* method);
  // Metadata: what the host would otherwise hard-code about a method.
  // The peft_type values of Hugging Face PEFT's adapter_config.json this method reads
  // ("LORA"; several separated by commas); null or "": none.
  const char* peft_types;
  // Other names for the method with a preset config, as a JSON object
  // {"pfeiffer": {"mh_adapter": false, ...}}; a user's config overrides the preset.
  const char* aliases;
  // The learning rate it trains well at on BERT-size models; 0: the host's default.
  double default_lr;
  // Optional capabilities by id (reverse-DNS, e.g. "org.graft.merge.v1"): a pointer to
  // the capability's struct, or null when the plugin has none. May itself be null.
  const void* (*extension)(const char* id);
};

using GraftPluginEntry = const GraftPluginInfo*();
}

#define GRAFT_PLUGIN_ENTRY_SYMBOL "graft_peft_plugin"

// Defines and exports the entry of a plugin. CREATE: a function
// graft::PeftMethod*(const graft::Config&). The rest: designated initialisers for the
// metadata fields (.peft_types, .aliases, .default_lr, .extension), in that order.
#define GRAFT_PLUGIN(NAME, VERSION, DESCRIPTION, SCHEMA, CREATE, ...)                               \
  extern "C" __attribute__((visibility("default"))) const GraftPluginInfo* graft_peft_plugin() {      \
    static const GraftPluginInfo info = {                                                           \
        .abi_major = GRAFT_PLUGIN_ABI_MAJOR,                                                        \
        .abi_minor = GRAFT_PLUGIN_ABI_MINOR,                                                        \
        .struct_size = sizeof(GraftPluginInfo),                                                     \
        .name = NAME,                                                                               \
        .version = VERSION,                                                                         \
        .description = DESCRIPTION,                                                                 \
        .config_schema = SCHEMA,                                                                    \
        .create = [](const graft::Config* c) -> graft::PeftMethod* { return CREATE(*c); },          \
        .destroy = [](graft::PeftMethod* m) { delete m; } __VA_OPT__(, ) __VA_ARGS__};              \
    return &info;                                                                                   \
  }
