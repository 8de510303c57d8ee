#include "plugin/loader.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <boost/dll/shared_library.hpp>
#include <cstddef>
#include <cstdlib>
#include <exception>

#include "graft/error.h"
#include "graft/plugin.h"
#include "io/json_config.h"
#include "plugin/builtin_methods.h"
#include "plugin/config_impl.h"

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
constexpr const char* kAbi1EntrySymbol = "graft_plugin_entry";

// peft_types ("A,B"), aliases ({"name": {preset}}) and default_lr into the record.
void read_metadata(const GraftPluginInfo& info, PluginRecord& record) {
  if (info.peft_types) {
    std::string item;
    for (const char* c = info.peft_types;; ++c) {
      if (*c == ',' || *c == 0) {
        if (!item.empty()) record.peft_types.push_back(item);
        item.clear();
        if (*c == 0) break;
      } else if (*c != ' ') {
        item += *c;
      }
    }
  }
  if (info.aliases && *info.aliases) {
    const auto aliases = io::parse_json(info.aliases, fmt::format("plugin '{}' aliases", record.name));
    if (!aliases.is_object())
      throw ConfigError("plugin", fmt::format("plugin '{}': aliases must be a JSON object of presets", record.name),
                        "e.g. .aliases = R\"({\"wide\": {\"r\": 64}})\"");
    for (const auto& [alias, preset] : aliases.items()) {
      if (!preset.is_object())
        throw ConfigError("plugin", fmt::format("plugin '{}': alias '{}' must map to a JSON object (its preset config)", record.name, alias),
                          "e.g. .aliases = R\"({\"wide\": {\"r\": 64}})\"");
      record.aliases.emplace_back(alias, preset.dump());
    }
  }
  record.default_lr = info.default_lr;
}

[[noreturn]] void fail(const fs::path& file, const std::string& what, const std::string& hint) {
  throw PluginError("plugin", fmt::format("{}: {}", file.string(), what), hint);
}

fs::path canonical_or_self(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(p, ec);
  return ec ? p.lexically_normal() : c;
}

// Why `file` cannot be a shared library of this machine, read from its ELF header and
// program headers; empty when they look right (the loader then says what else is wrong).
std::string elf_problem(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return {};  // unreadable: dlopen says why
  unsigned char bytes[sizeof(ElfW(Ehdr))] = {};
  in.read(reinterpret_cast<char*>(bytes), sizeof bytes);
  const auto n = static_cast<std::size_t>(in.gcount());
  if (n < SELFMAG || std::memcmp(bytes, ELFMAG, SELFMAG) != 0) return "not an ELF file";
  if (n < sizeof bytes) return fmt::format("a truncated ELF file ({} bytes, shorter than an ELF header)", n);
  ElfW(Ehdr) header;
  std::memcpy(&header, bytes, sizeof header);
  constexpr unsigned char word = sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32;
  if (header.e_ident[EI_CLASS] != word)
    return fmt::format("an ELF file of another word size ({}-bit, this graft is {}-bit)", header.e_ident[EI_CLASS] == ELFCLASS32 ? 32 : 64,
                       8 * sizeof(void*));
  constexpr unsigned char order = std::endian::native == std::endian::little ? ELFDATA2LSB : ELFDATA2MSB;
  if (header.e_ident[EI_DATA] != order) return "an ELF file of the other byte order";
#if defined(__x86_64__)
  constexpr auto machine = EM_X86_64;
#elif defined(__aarch64__)
  constexpr auto machine = EM_AARCH64;
#else
  const auto machine = header.e_machine;
#endif
  if (header.e_machine != machine) return fmt::format("an ELF file for another machine (e_machine {}, this one is {})", header.e_machine, machine);
  if (header.e_type == ET_EXEC) return "an ELF executable, not a shared library";
  if (header.e_type == ET_REL) return "an ELF object file (.o), not a shared library: link it with -shared";
  if (header.e_type != ET_DYN) return fmt::format("an ELF file of type {}, not a shared library", header.e_type);
  // Every byte the loader will map must be in the file: it maps past the end and
  // faults (SIGBUS) on a truncated library instead of reporting it.
  std::error_code ec;
  const std::uintmax_t size = fs::file_size(file, ec);
  if (ec) return fmt::format("its size cannot be read: {}", ec.message());
  const std::uintmax_t table_end = header.e_phoff + std::uintmax_t{header.e_phnum} * header.e_phentsize;
  if (header.e_phentsize != sizeof(ElfW(Phdr)) || header.e_phnum == 0 || table_end > size)
    return fmt::format("a truncated or corrupt ELF file (its program headers end at byte {}, the file has {})", table_end, size);
  in.clear();
  in.seekg(static_cast<std::streamoff>(header.e_phoff));
  for (unsigned i = 0; i < header.e_phnum; ++i) {
    ElfW(Phdr) segment;
    if (!in.read(reinterpret_cast<char*>(&segment), sizeof segment)) return "a truncated ELF file (its program headers cannot be read)";
    if (segment.p_type == PT_LOAD && std::uintmax_t{segment.p_offset} + segment.p_filesz > size)
      return fmt::format("a truncated ELF file (segment {} ends at byte {}, the file has {}): copy the library again",
                         i, std::uintmax_t{segment.p_offset} + segment.p_filesz, size);
  }
  // The section headers come last in the file: a library cut short keeps its segments
  // (and would load) only when it was cut in its debug information, but it is damaged
  // all the same.
  const std::uintmax_t sections_end = header.e_shoff + std::uintmax_t{header.e_shnum} * header.e_shentsize;
  if (header.e_shoff != 0 && sections_end > size)
    return fmt::format("a truncated ELF file (its section headers end at byte {}, the file has {}): copy the library again",
                       sections_end, size);
  return {};
}

// RTLD_NOW so that a plugin built against another libgraft fails here, with the name
// of the missing symbol, rather than at its first call. RTLD_LOCAL keeps one plugin's
// symbols from resolving another's.
boost::dll::shared_library open_library(const fs::path& file) {
  // Checked first: the dynamic loader's own messages mislead ("No such file or
  // directory" for a file that is there), and it dies of SIGBUS on a truncated library.
  if (const std::string problem = elf_problem(file); !problem.empty())
    fail(file, "not a shared library: " + problem, "a plugin is a shared library (lib<name>.so) built with the GRAFT_PLUGIN macro");
  boost::dll::shared_library library;
  std::error_code ec;
  library.load(file, boost::dll::load_mode::rtld_local | boost::dll::load_mode::rtld_now, ec);
  if (!ec) return library;
  // Boost.DLL keeps only an error code; dlopen's own text is still pending in dlerror().
  const char* text = ::dlerror();
  std::string reason = text ? text : ec.message();
  if (const std::string prefix = file.string() + ": "; reason.rfind(prefix, 0) == 0) reason.erase(0, prefix.size());
  if (reason.find("No such file or directory") != std::string::npos && fs::exists(file))
    reason = "the dynamic loader cannot map it (" + reason + "): a corrupt library?";
  if (reason.find("undefined symbol") != std::string::npos)
    fail(file, "has unresolved symbols: " + reason,
         "it was built against another libgraft or misses a library it needs; " + std::string(kRebuildHint));
  fail(file, "not a shared library that can be loaded: " + reason,
       "a plugin is a shared library (lib<name>.so) built with the GRAFT_PLUGIN macro");
}

// The fields of ABI 2.0: the smallest GraftPluginInfo a 2.x plugin may hand over. A
// later minor appends fields; reading one of those would check struct_size first.
constexpr std::size_t kInfoSize20 = offsetof(GraftPluginInfo, extension) + sizeof(GraftPluginInfo::extension);

// The ABI gate. abi_major, abi_minor and struct_size are read before any other field:
// a plugin of another major version may lay the rest of the struct out differently.
const GraftPluginInfo& gate(const fs::path& file, const GraftPluginInfo* info) {
  if (!info) fail(file, "graft_peft_plugin returned null", "the entry must return a pointer to a static GraftPluginInfo");
  if (info->abi_major != GRAFT_PLUGIN_ABI_MAJOR)
    fail(file,
         fmt::format("plugin ABI {}.{}, this graft supports ABI {}.x (up to {}.{})", info->abi_major, info->abi_minor,
                     GRAFT_PLUGIN_ABI_MAJOR, GRAFT_PLUGIN_ABI_MAJOR, GRAFT_PLUGIN_ABI_MINOR),
         kRebuildHint);
  if (info->struct_size < kInfoSize20)
    fail(file,
         fmt::format("plugin info struct size {} bytes, ABI {}.{} needs at least {} (same ABI version, different headers?)",
                     info->struct_size, info->abi_major, info->abi_minor, kInfoSize20),
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
  if (info->default_lr < 0 || !(info->default_lr < 10))
    fail(file, fmt::format("plugin default_lr {} is not in [0, 10)", info->default_lr), "give a learning rate such as 1e-3, or 0 for the host's");
  return *info;
}

// A plugin that lost its name to another one: reported, never used.
struct PluginConflict : PluginError {
  using PluginError::PluginError;
};

constexpr const char* kConflictHint =
    "the shipped plugin is used; rename yours (GRAFT_PLUGIN's name) or take its folder off --plugin-dir / "
    "GRAFT_PLUGIN_PATH";

std::string conflict_text(const std::string& name, const fs::path& shipped) {
  return fmt::format("plugin name '{}' conflicts with the plugin shipped with graft ({}); this one is not used", name,
                     shipped.string());
}

std::string conflict_message(const fs::path& file, const std::string& name, const fs::path& shipped) {
  return PluginError("plugin", fmt::format("{}: {}", file.string(), conflict_text(name, shipped)), kConflictHint).what();
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

std::vector<fs::path> shipped_plugin_dirs() {
  // Beside this libgraft in the build tree, or in <libdir>/graft/plugins once installed
  // (found from where libgraft was loaded, so a relocated install still finds its own;
  // an installed graft ignores the build tree).
  std::vector<fs::path> dirs;
  const fs::path lib_dir = libgraft_dir();
  std::error_code ec;
  if (fs::equivalent(lib_dir, GRAFT_BUILD_LIB_DIR, ec) && fs::is_directory(GRAFT_BUILD_PLUGIN_DIR, ec))
    dirs.emplace_back(GRAFT_BUILD_PLUGIN_DIR);
  if (fs::is_directory(lib_dir / "graft" / "plugins", ec)) dirs.push_back(lib_dir / "graft" / "plugins");
  return dirs;
}

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
  // Then the plugins shipped with this libgraft.
  for (const auto& dir : shipped_plugin_dirs()) dirs.push_back(dir);
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

namespace {

// A file in one of the shipped plugin folders (links resolved).
bool is_shipped(const fs::path& file) {
  static const std::vector<fs::path> dirs = [] {
    std::vector<fs::path> out;
    for (const auto& dir : shipped_plugin_dirs()) out.push_back(canonical_or_self(dir));
    return out;
  }();
  return std::find(dirs.begin(), dirs.end(), canonical_or_self(file).parent_path()) != dirs.end();
}

}  // namespace

PluginRegistry::PluginRegistry() {
  for (const GraftPluginInfo* info : builtin_methods()) {
    auto loaded = std::make_shared<Loaded>();
    loaded->info = info;
    loaded->schema = parse_schema(info->config_schema, info->name);
    PluginRecord record{info->name, info->version, info->description, info->config_schema, {}, {}, {}, 0};
    read_metadata(*info, record);
    builtin_records_.push_back(std::move(record));
    builtin_loaded_.push_back(std::move(loaded));
  }
}
PluginRegistry::~PluginRegistry() = default;
PluginRegistry::PluginRegistry(PluginRegistry&&) noexcept = default;
PluginRegistry& PluginRegistry::operator=(PluginRegistry&&) noexcept = default;

void PluginRegistry::scan(const std::vector<fs::path>& dirs) {
  auto failure = [](const fs::path& path, const std::string& what, const std::string& hint) {
    return LoadFailure{path, PluginError("plugin", fmt::format("{}: {}", path.string(), what), hint).what()};
  };
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      failures_.push_back(failure(dir, "no such directory", "check --plugin-dir and GRAFT_PLUGIN_PATH"));
      continue;
    }
    // One entry that cannot be read (a symlink loop, a dangling link) is reported on
    // its own: the other plugins of the folder still load.
    std::vector<fs::path> files;
    fs::directory_iterator it(dir, ec);
    for (const fs::directory_iterator end; !ec && it != end; it.increment(ec)) {
      const fs::path& path = it->path();
      if (path.extension() != ".so") continue;
      std::error_code entry_ec;
      const fs::file_status status = fs::status(path, entry_ec);
      if (status.type() == fs::file_type::not_found) entry_ec.clear();  // a dangling link: reported below
      if (entry_ec)
        failures_.push_back(failure(path, fmt::format("cannot be read: {}", entry_ec.message()),
                                    "a symbolic link loop? fix or remove it; the folder's other plugins were loaded"));
      else if (!fs::exists(status))
        failures_.push_back(failure(path, "is a symbolic link to a file that does not exist",
                                    "fix or remove the link; the folder's other plugins were loaded"));
      else if (fs::is_regular_file(status))
        files.push_back(path);
    }
    if (ec)
      failures_.push_back(failure(dir, fmt::format("cannot list the folder: {}", ec.message()),
                                  "check its permissions; plugins listed before the error were loaded"));
    std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
    for (const auto& file : files) {
      try {
        load(file);
      } catch (const PluginConflict& e) {
        failures_.push_back({file, e.what(), true});
      } catch (const std::exception& e) {
        failures_.push_back({file, e.what()});
      }
    }
  }
}

std::vector<LoadFailure> PluginRegistry::conflicts() const {
  std::vector<LoadFailure> out;
  for (const auto& f : failures_)
    if (f.conflict) out.push_back(f);
  return out;
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
  if (!loaded->library.has(GRAFT_PLUGIN_ENTRY_SYMBOL)) {
    // ABI 1 exported a Boost.DLL alias under another name; its struct began with
    // {abi_version, struct_size}: enough to say which version it is.
    if (loaded->library.has(kAbi1EntrySymbol)) {
      // (Called through the type ABI 1 declared it with; only its first two words are read.)
      const auto* legacy = reinterpret_cast<const std::uint32_t*>(loaded->library.get_alias<GraftPluginEntry>(kAbi1EntrySymbol)());
      fail(file,
           fmt::format("plugin ABI {}, this graft supports ABI {}.x (up to {}.{})", legacy ? legacy[0] : 1u, GRAFT_PLUGIN_ABI_MAJOR,
                       GRAFT_PLUGIN_ABI_MAJOR, GRAFT_PLUGIN_ABI_MINOR),
           kRebuildHint);
    }
    fail(file, fmt::format("no entry symbol '{}'", GRAFT_PLUGIN_ENTRY_SYMBOL),
         "export it with GRAFT_PLUGIN(...) from graft/plugin.h");
  }
  const GraftPluginInfo* info = nullptr;
  try {
    info = loaded->library.get<GraftPluginEntry>(GRAFT_PLUGIN_ENTRY_SYMBOL)();
  } catch (const std::exception& e) {
    fail(file, fmt::format("graft_peft_plugin threw: {}", e.what()), "the entry must only return its static info");
  } catch (...) {
    fail(file, "graft_peft_plugin threw", "the entry must only return its static info");
  }
  loaded->info = &gate(file, info);

  PluginRecord record{info->name, info->version, info->description, info->config_schema, file, {}, {}, 0};
  try {
    loaded->schema = parse_schema(record.schema_json, record.name);
    read_metadata(*info, record);
  } catch (const Error& e) {
    fail(file, e.message(), e.hint());
  }
  for (const auto& builtin : builtin_records_)
    if (builtin.name == record.name)
      throw PluginConflict("plugin", fmt::format("{}: '{}' is the name of a built-in method", file.string(), record.name),
                           "the built-in method is used; rename the plugin (GRAFT_PLUGIN's name)");
  // Shipped plugins win a name (docs/plugin-guide.md, "Trust model"); otherwise the
  // first one found does. The other is reported as a conflict, never used.
  const bool shipped = is_shipped(file);
  for (std::size_t i = 0; i < records_.size(); ++i) {
    const PluginRecord& other = records_[i];
    if (other.name != record.name) continue;
    const bool other_shipped = is_shipped(other.file);
    if (shipped && !other_shipped) {
      failures_.push_back({other.file, conflict_message(other.file, record.name, file), true});
      records_[i] = std::move(record);
      loaded_[i] = std::move(loaded);
      return records_[i];
    }
    if (other_shipped && !shipped)
      throw PluginConflict("plugin", fmt::format("{}: {}", file.string(), conflict_text(record.name, other.file)), kConflictHint);
    throw PluginConflict("plugin",
                         fmt::format("{}: duplicate plugin name '{}': already loaded from {}", file.string(), record.name,
                                     other.file.string()),
                         "the first one found is used; remove or rename the other");
  }

  records_.push_back(std::move(record));
  loaded_.push_back(std::move(loaded));
  return records_.back();
}

const PluginRecord* PluginRegistry::lookup(const std::string& name) const {
  for (const auto& record : builtin_records_)
    if (record.name == name) return &record;
  for (const auto& record : records_)
    if (record.name == name) return &record;
  return nullptr;
}

const PluginRecord& PluginRegistry::find(const std::string& name) const {
  if (const PluginRecord* record = lookup(name)) return *record;
  std::vector<std::string> names, failed;
  for (const auto& record : records_) names.push_back(record.name);
  for (const auto& failure : failures_) failed.push_back(failure.file.string());
  std::string hint = failed.empty() ? "" : fmt::format("these failed to load (see `graft plugins`): {}; ", fmt::join(failed, ", "));
  hint += "add the plugin's directory with --plugin-dir or GRAFT_PLUGIN_PATH";
  throw PluginError("plugin",
                    fmt::format("no plugin named '{}' (loaded: {})", name, names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "))),
                    hint);
}

const PluginRecord* PluginRegistry::find_peft_type(const std::string& peft_type) const {
  for (const auto& record : records_)
    if (std::find(record.peft_types.begin(), record.peft_types.end(), peft_type) != record.peft_types.end()) return &record;
  return nullptr;
}

const PluginRecord* PluginRegistry::find_alias(const std::string& alias, std::string* preset_json) const {
  for (const auto& record : records_)
    for (const auto& [name, preset] : record.aliases)
      if (name == alias) {
        if (preset_json) *preset_json = preset;
        return &record;
      }
  return nullptr;
}

std::shared_ptr<PeftMethod> PluginRegistry::create(const std::string& name, const std::string& config_json,
                                                   const std::string& origin, std::string* resolved_config) const {
  const PluginRecord& record = find(name);
  const bool builtin = &record >= builtin_records_.data() && &record < builtin_records_.data() + builtin_records_.size();
  const std::shared_ptr<const Loaded> loaded =
      builtin ? builtin_loaded_[&record - builtin_records_.data()] : loaded_[&record - records_.data()];
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
  return std::shared_ptr<PeftMethod>(method, [loaded, name](PeftMethod* m) {
    try {
      loaded->info->destroy(m);
    } catch (...) {  // a deleter must not throw; nothing is left to clean up
      fmt::print(stderr, "graft: warning: plugin '{}' threw while destroying its method\n", name);
    }
  });
}

}  // namespace graft::plugin
