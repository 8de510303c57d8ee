#include "plugin/loader.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <exception>

#include "graft/error.h"
#include "graft/plugin.h"
#include "io/json_config.h"
#include "peft/config_impl.h"

namespace graft::plugin {

namespace fs = std::filesystem;

// Declared first, destroyed last: nothing from the library may outlive `library`.
struct PluginRegistry::Loaded {
  boost::dll::shared_library library;
  fs::path canonical;  // to recognise the same file reached by another path
  const GraftPluginInfo* info = nullptr;
  nlohmann::json schema;
};

namespace {

constexpr const char* kRebuildHint = "rebuild the plugin against this graft's SDK (sdk/include/graft)";

[[noreturn]] void fail(const fs::path& file, const std::string& what, const std::string& hint) {
  throw PluginError("plugin", fmt::format("{}: {}", file.string(), what), hint);
}

fs::path canonical_or_self(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(p, ec);
  return ec ? p.lexically_normal() : c;
}

// RTLD_NOW so that a plugin built against another libgraft fails here, with the name
// of the missing symbol, rather than at its first call. RTLD_LOCAL keeps one plugin's
// symbols from resolving another's.
boost::dll::shared_library open_library(const fs::path& file) {
  boost::dll::shared_library library;
  std::error_code ec;
  library.load(file, boost::dll::load_mode::rtld_local | boost::dll::load_mode::rtld_now, ec);
  if (!ec) return library;
  // Boost.DLL keeps only an error code; dlopen's own text is still pending in dlerror().
  const char* text = ::dlerror();
  std::string reason = text ? text : ec.message();
  if (const std::string prefix = file.string() + ": "; reason.rfind(prefix, 0) == 0) reason.erase(0, prefix.size());
  if (reason.find("undefined symbol") != std::string::npos)
    fail(file, "has unresolved symbols: " + reason,
         "it was built against another libgraft or misses a library it needs; " + std::string(kRebuildHint));
  fail(file, "not a shared library that can be loaded: " + reason,
       "a plugin is a shared library (lib<name>.so) built with the GRAFT_PLUGIN macro");
}

// The ABI gate. abi_version and struct_size are read before any other field: a plugin
// of another ABI may lay the rest of the struct out differently.
const GraftPluginInfo& gate(const fs::path& file, const GraftPluginInfo* info) {
  if (!info) fail(file, "graft_plugin_entry returned null", "the entry must return a pointer to a static GraftPluginInfo");
  if (info->abi_version != GRAFT_PLUGIN_ABI_VERSION)
    fail(file, fmt::format("plugin ABI version {}, this graft supports {}", info->abi_version, GRAFT_PLUGIN_ABI_VERSION),
         kRebuildHint);
  if (info->struct_size != sizeof(GraftPluginInfo))
    fail(file,
         fmt::format("plugin info struct size {} bytes, this graft expects {} (same ABI version, different headers?)",
                     info->struct_size, sizeof(GraftPluginInfo)),
         kRebuildHint);
  std::vector<std::string> missing;
  if (!info->name || !*info->name) missing.push_back("name");
  if (!info->version) missing.push_back("version");
  if (!info->description) missing.push_back("description");
  if (!info->config_schema) missing.push_back("config_schema");
  if (!info->create) missing.push_back("create");
  if (!info->destroy) missing.push_back("destroy");
  if (!missing.empty())
    fail(file, fmt::format("plugin info has no {}", fmt::join(missing, ", ")),
         "fill every field; GRAFT_PLUGIN(name, version, description, schema, create) does");
  return *info;
}

}  // namespace

namespace {

fs::path libgraft_dir() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<const void*>(&search_path), &info) == 0 || !info.dli_fname) return {};
  std::error_code ec;
  const fs::path lib = fs::canonical(info.dli_fname, ec);
  return ec ? fs::path() : lib.parent_path();
}

}  // namespace

std::vector<fs::path> search_path(const std::vector<fs::path>& plugin_dirs) {
  std::vector<fs::path> dirs = plugin_dirs;
  if (const char* env = std::getenv("GRAFT_PLUGIN_PATH")) {
    const std::string text = env;
    for (std::size_t start = 0; start <= text.size();) {
      std::size_t end = text.find(':', start);
      if (end == std::string::npos) end = text.size();
      if (end > start) dirs.emplace_back(text.substr(start, end - start));
      start = end + 1;
    }
  }
  // Then the plugins shipped with this libgraft: beside it in the build tree, or in
  // <libdir>/graft/plugins once installed (found from where libgraft was loaded, so a
  // relocated install still finds its own; an installed graft ignores the build tree).
  const fs::path lib_dir = libgraft_dir();
  std::error_code ec;
  if (fs::equivalent(lib_dir, GRAFT_BUILD_LIB_DIR, ec) && fs::is_directory(GRAFT_BUILD_PLUGIN_DIR, ec))
    dirs.emplace_back(GRAFT_BUILD_PLUGIN_DIR);
  if (fs::is_directory(lib_dir / "graft" / "plugins", ec)) dirs.push_back(lib_dir / "graft" / "plugins");
  // The same directory twice (say --plugin-dir pointing at the build tree) would make
  // every plugin in it a duplicate of itself.
  std::vector<fs::path> out, seen;
  for (const auto& dir : dirs) {
    const fs::path key = canonical_or_self(dir);
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) continue;
    seen.push_back(key);
    out.push_back(dir);
  }
  return out;
}

PluginRegistry::PluginRegistry() = default;
PluginRegistry::~PluginRegistry() = default;
PluginRegistry::PluginRegistry(PluginRegistry&&) noexcept = default;
PluginRegistry& PluginRegistry::operator=(PluginRegistry&&) noexcept = default;

void PluginRegistry::scan(const std::vector<fs::path>& dirs) {
  for (const auto& dir : dirs) {
    std::vector<fs::path> files;
    try {
      if (!fs::is_directory(dir))
        throw PluginError("plugin", fmt::format("{}: no such directory", dir.string()),
                          "check --plugin-dir and GRAFT_PLUGIN_PATH");
      for (const auto& entry : fs::directory_iterator(dir))
        if (entry.path().extension() == ".so" && entry.is_regular_file()) files.push_back(entry.path());
    } catch (const std::exception& e) {
      failures_.push_back({dir, e.what()});
      continue;
    }
    std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
    for (const auto& file : files) {
      try {
        load(file);
      } catch (const std::exception& e) {
        failures_.push_back({file, e.what()});
      }
    }
  }
}

const PluginRecord& PluginRegistry::load(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec))
    fail(file, "no such file", "give the path of a plugin library, or its directory with --plugin-dir");
  const fs::path canonical = canonical_or_self(file);
  for (std::size_t i = 0; i < loaded_.size(); ++i)
    if (loaded_[i]->canonical == canonical) return records_[i];

  auto loaded = std::make_shared<Loaded>();
  loaded->canonical = canonical;
  loaded->library = open_library(file);
  if (!loaded->library.has(GRAFT_PLUGIN_ENTRY_SYMBOL))
    fail(file, fmt::format("no entry symbol '{}'", GRAFT_PLUGIN_ENTRY_SYMBOL),
         "export it with GRAFT_PLUGIN(...) from graft/plugin.h");
  const GraftPluginInfo* info = nullptr;
  try {
    info = loaded->library.get_alias<GraftPluginEntry>(GRAFT_PLUGIN_ENTRY_SYMBOL)();
  } catch (const std::exception& e) {
    fail(file, fmt::format("graft_plugin_entry threw: {}", e.what()), "the entry must only return its static info");
  } catch (...) {
    fail(file, "graft_plugin_entry threw", "the entry must only return its static info");
  }
  loaded->info = &gate(file, info);

  PluginRecord record{info->name, info->version, info->description, info->config_schema, file};
  try {
    loaded->schema = parse_schema(record.schema_json, record.name);
  } catch (const Error& e) {
    fail(file, e.message(), e.hint());
  }
  for (const auto& other : records_)
    if (other.name == record.name)
      fail(file, fmt::format("duplicate plugin name '{}': already loaded from {}", record.name, other.file.string()),
           "the first one found is used; remove or rename the other");

  records_.push_back(std::move(record));
  loaded_.push_back(std::move(loaded));
  return records_.back();
}

const PluginRecord& PluginRegistry::find(const std::string& name) const {
  for (const auto& record : records_)
    if (record.name == name) return record;
  std::vector<std::string> names, failed;
  for (const auto& record : records_) names.push_back(record.name);
  for (const auto& failure : failures_) failed.push_back(failure.file.string());
  std::string hint = failed.empty() ? "" : fmt::format("these failed to load (see `graft plugins`): {}; ", fmt::join(failed, ", "));
  hint += "add the plugin's directory with --plugin-dir or GRAFT_PLUGIN_PATH";
  throw PluginError("plugin",
                    fmt::format("no plugin named '{}' (loaded: {})", name, names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "))),
                    hint);
}

std::shared_ptr<PeftMethod> PluginRegistry::create(const std::string& name, const std::string& config_json,
                                                   const std::string& origin, std::string* resolved_config) const {
  const PluginRecord& record = find(name);
  const std::shared_ptr<const Loaded> loaded = loaded_[&record - records_.data()];
  const std::string where = origin.empty() ? "config" : origin;
  const nlohmann::json given = config_json.empty() ? nlohmann::json::object() : io::parse_json(config_json, where);
  const Config config = validate_config(loaded->schema, given, name, where);
  if (resolved_config) *resolved_config = config.to_json();

  PeftMethod* method = nullptr;
  // Errors are copied into host-made exceptions: the plugin's exception object must
  // not be what propagates, in case its code is unloaded before the catch.
  try {
    method = loaded->info->create(&config);
  } catch (const ConfigError& e) {
    throw ConfigError(e.component(), e.message(), e.hint());  // a plugin's own check of its config
  } catch (const std::exception& e) {
    throw PluginError("plugin", fmt::format("plugin '{}' failed to create its method: {}", name, e.what()),
                      fmt::format("the error comes from {}", record.file.string()));
  } catch (...) {
    throw PluginError("plugin", fmt::format("plugin '{}' failed to create its method: unknown exception", name),
                      fmt::format("the error comes from {}", record.file.string()));
  }
  if (!method)
    throw PluginError("plugin", fmt::format("plugin '{}' failed to create its method: create returned null", name),
                      fmt::format("the error comes from {}", record.file.string()));
  // The deleter owns a reference to the library: destroy runs while its code is mapped.
  return std::shared_ptr<PeftMethod>(method, [loaded](PeftMethod* m) { loaded->info->destroy(m); });
}

}  // namespace graft::plugin
