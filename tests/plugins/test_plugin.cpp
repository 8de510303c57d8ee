// The loader's test plugins: one source, one case per build (-DCASE_<NAME>). They are
// not PEFT methods, only enough to exercise the loader's gates and the host's handling
// of a plugin that throws.
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include "graft/plugin.h"

namespace {

#ifdef CASE_THROWING_ODD
// Not a std::exception: what a careless plugin might throw, and the host must still
// report as an error naming the plugin and the call.
struct NotAnException {
  int code = 7;
};
class OddHook : public graft::AdapterHook {
 public:
  graft::Tensor linear(const graft::Site&, const graft::LinearCall&, const graft::Rows&) override {
    throw NotAnException{};
  }
};
#endif

class NullMethod : public graft::PeftMethod {
 public:
  explicit NullMethod(const graft::Config& c) : r_(c.integer("r")), mode_(c.string("mode")) {}
  void attach([[maybe_unused]] graft::AttachContext& context) override {
#ifdef CASE_THROWING_ATTACH
    throw std::runtime_error("attach exploded");
#endif
#ifdef CASE_THROWING_ODD
    // mode "a": attach throws an int; mode "b": the hook on the first linear site
    // throws during the forward pass.
    if (mode_ == "a") throw 42;
    const auto sites = context.select(graft::SiteKind::linear, {}, {});
    context.register_hook(*sites.at(0), std::make_shared<OddHook>());
#endif
  }
  std::vector<graft::nn::NamedParameter> parameters() const override { return {}; }
  std::string describe() const override { return "null method r=" + std::to_string(r_) + " mode=" + mode_; }
  std::string adapter_config_json() const override { return R"({"peft_type": "NULL"})"; }

 private:
  std::int64_t r_;
  std::string mode_;
};

[[maybe_unused]] constexpr const char* kSchema = R"({
  "type": "object",
  "properties": {
    "r": {"type": "integer", "default": 8, "minimum": 1, "description": "rank"},
    "mode": {"type": "string", "default": "a", "enum": ["a", "b"]}
  }
})";

[[maybe_unused]] graft::PeftMethod* create(const graft::Config& c) {
#ifdef CASE_THROWING_FACTORY
  throw std::runtime_error("boom");
#endif
  return new NullMethod(c);
}

}  // namespace

#if defined(CASE_GOOD)
GRAFT_PLUGIN("test_good", "1.0.0", "a plugin that loads", kSchema, create)
#elif defined(CASE_GOOD_TWIN)
GRAFT_PLUGIN("test_good", "2.0.0", "another file with the same name", kSchema, create)
#elif defined(CASE_THROWING_FACTORY)
GRAFT_PLUGIN("test_throwing_factory", "1.0.0", "create throws", kSchema, create)
#elif defined(CASE_THROWING_ATTACH)
GRAFT_PLUGIN("test_throwing_attach", "1.0.0", "attach throws", kSchema, create)
#elif defined(CASE_THROWING_ODD)
GRAFT_PLUGIN("test_throwing_odd", "1.0.0", "attach or its hook throws something that is not a std::exception", kSchema, create)
#elif defined(CASE_SHADOW_HOULSBY)
// A valid plugin under the name of a shipped one: it must never replace it.
GRAFT_PLUGIN("houlsby", "6.6.6", "not the real houlsby", kSchema, create)
#elif defined(CASE_UNRESOLVED)
// Needs a symbol that no library defines, as a plugin built against another libgraft
// would: RTLD_NOW makes that a load error instead of a crash at the first call.
extern "C" int graft_symbol_nobody_defines();
namespace {
graft::PeftMethod* create_unresolved(const graft::Config& c) { return graft_symbol_nobody_defines() ? create(c) : nullptr; }
}  // namespace
GRAFT_PLUGIN("test_unresolved", "1.0.0", "needs a missing symbol", kSchema, create_unresolved)
#elif defined(CASE_NO_ENTRY)
// A valid library that exports something, but not the entry.
extern "C" int graft_not_the_entry() { return 42; }
#elif defined(CASE_GOOD_META)
// Metadata the host reads instead of hard-coding: a peft_type, an alias with a preset,
// a default learning rate.
GRAFT_PLUGIN("test_meta", "1.0.0", "a plugin with metadata", kSchema, create, .peft_types = "NULL, NULL_TOO",
             .aliases = R"({"test_meta_wide": {"r": 64}})", .default_lr = 0.25)
#elif defined(CASE_BAD_LR)
// Metadata out of range: a negative learning rate is refused at load, naming it.
GRAFT_PLUGIN("test_bad_lr", "1.0.0", "a plugin with a negative default_lr", kSchema, create, .default_lr = -0.5)
#elif defined(CASE_ABI1)
// What a plugin built against ABI 1 exported: a Boost.DLL alias `graft_plugin_entry`
// returning {abi_version = 1, struct_size, ...}. It must be refused with both versions.
#include <boost/dll/alias.hpp>
namespace {
struct Abi1Info {
  std::uint32_t abi_version, struct_size;
  const char *name, *version, *description, *config_schema;
  void *create, *destroy;
};
// Declared as ABI 1 declared its entry: returning `const GraftPluginInfo*` (ABI 1's
// struct of that name), so the host calls it through the very same function type.
const GraftPluginInfo* abi1_entry() {
  static const Abi1Info info = {1, sizeof(Abi1Info), "test_abi1", "1.0.0", "an ABI 1 plugin", kSchema, nullptr, nullptr};
  return reinterpret_cast<const GraftPluginInfo*>(&info);
}
}  // namespace
BOOST_DLL_ALIAS(abi1_entry, graft_plugin_entry)
#elif defined(CASE_NEWER_MINOR)
// Built against a newer minor version of ABI 2: a field appended after the 2.0 ones and
// an extension this host does not know. It must load; the host reads what it knows.
namespace {
struct FutureInfo {
  GraftPluginInfo known;
  const char* field_of_a_later_minor;
};
const void* extension(const char* id) {
  static const int capability = 1;
  return std::string_view(id) == "org.graft.test.future.v1" ? &capability : nullptr;
}
}  // namespace
extern "C" __attribute__((visibility("default"))) const GraftPluginInfo* graft_peft_plugin() {
  static const FutureInfo info = {{.abi_major = GRAFT_PLUGIN_ABI_MAJOR,
                                   .abi_minor = GRAFT_PLUGIN_ABI_MINOR + 7,
                                   .struct_size = sizeof(FutureInfo),
                                   .name = "test_newer_minor",
                                   .version = "1.0.0",
                                   .description = "built against a newer minor ABI",
                                   .config_schema = kSchema,
                                   .create = [](const graft::Config* c) { return create(*c); },
                                   .destroy = [](graft::PeftMethod* m) { delete m; },
                                   .peft_types = nullptr,
                                   .aliases = nullptr,
                                   .default_lr = 0,
                                   .extension = extension},
                                  "unknown to this host"};
  return &info.known;
}
#elif defined(CASE_WRONG_ABI) || defined(CASE_WRONG_SIZE) || defined(CASE_NULL_INFO) || defined(CASE_MISSING_FIELDS) || \
    defined(CASE_BAD_SCHEMA) || defined(CASE_BAD_ALIASES)
// Written by hand: what a plugin of another ABI (or other headers, or a buggy one)
// would export. The wrong-ABI struct's other fields are garbage on purpose: the gate
// must not read them.
namespace {
using Create = graft::PeftMethod* (*)(const graft::Config*);
using Destroy = void (*)(graft::PeftMethod*);
[[maybe_unused]] graft::PeftMethod* create_ptr(const graft::Config* c) { return create(*c); }
[[maybe_unused]] void destroy_ptr(graft::PeftMethod* m) { delete m; }
}  // namespace
extern "C" __attribute__((visibility("default"))) const GraftPluginInfo* graft_peft_plugin() {
  [[maybe_unused]] auto* garbage = reinterpret_cast<const char*>(std::uintptr_t{0x1});
#if defined(CASE_WRONG_ABI)
  static const GraftPluginInfo info = {999, 3, 12, garbage, garbage, garbage, garbage, nullptr, nullptr, garbage, garbage, -1, nullptr};
#elif defined(CASE_WRONG_SIZE)
  static const GraftPluginInfo info = {GRAFT_PLUGIN_ABI_MAJOR, GRAFT_PLUGIN_ABI_MINOR, 40, garbage, garbage, garbage,
                                       garbage, nullptr, nullptr, garbage, garbage, -1, nullptr};
#elif defined(CASE_MISSING_FIELDS)
  static const GraftPluginInfo info = {GRAFT_PLUGIN_ABI_MAJOR, GRAFT_PLUGIN_ABI_MINOR, sizeof(GraftPluginInfo), "test_missing_fields",
                                       "1.0.0", nullptr, kSchema, Create{}, Destroy{}, nullptr, nullptr, 0, nullptr};
#elif defined(CASE_BAD_SCHEMA)
  static const GraftPluginInfo info = {GRAFT_PLUGIN_ABI_MAJOR, GRAFT_PLUGIN_ABI_MINOR, sizeof(GraftPluginInfo), "test_bad_schema",
                                       "1.0.0", "", "{not json", create_ptr, destroy_ptr, nullptr, nullptr, 0, nullptr};
#elif defined(CASE_BAD_ALIASES)
  static const GraftPluginInfo info = {GRAFT_PLUGIN_ABI_MAJOR, GRAFT_PLUGIN_ABI_MINOR, sizeof(GraftPluginInfo), "test_bad_aliases",
                                       "1.0.0", "", kSchema, create_ptr, destroy_ptr, nullptr, R"({"wide": 64})", 0, nullptr};
#else
  return nullptr;  // CASE_NULL_INFO
#endif
#ifndef CASE_NULL_INFO
  return &info;
#endif
}
#else
#error "build with -DCASE_<NAME>"
#endif
