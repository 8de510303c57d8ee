// The plugin loader against the test plugins of tests/plugins: every way a plugin can
// be broken gives its own message naming the file, the host goes on, and what loaded
// keeps working — even after the registry that loaded it is gone.
#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "graft/error.h"
#include "plugin/loader.h"

namespace fs = std::filesystem;
using graft::plugin::PluginRegistry;

#define EXPECT_HAS(text, part) EXPECT_NE((text).find(part), std::string::npos) << "missing '" << (part) << "' in:\n" << (text)

namespace {

const fs::path kRoot = GRAFT_TEST_PLUGIN_ROOT;
fs::path dir_of(const std::string& c) { return kRoot / c; }
fs::path lib_of(const std::string& c) { return dir_of(c) / ("lib" + c + ".so"); }

// Scans the one folder of a broken case: nothing loads, one failure naming the file
// and every `part`; load() of the file throws a PluginError with that same text.
void expect_rejected(const std::string& c, std::initializer_list<std::string> parts) {
  SCOPED_TRACE(c);
  PluginRegistry registry;
  registry.scan({dir_of(c)});
  EXPECT_TRUE(registry.plugins().empty());
  ASSERT_EQ(registry.failures().size(), 1u);
  const auto& failure = registry.failures()[0];
  EXPECT_EQ(failure.file, lib_of(c));
  EXPECT_HAS(failure.message, lib_of(c).string());
  for (const auto& part : parts) EXPECT_HAS(failure.message, part);
  try {
    registry.load(lib_of(c));
    ADD_FAILURE() << "load did not throw";
  } catch (const graft::PluginError& e) {
    EXPECT_EQ(e.component(), "plugin");
    EXPECT_EQ(std::string(e.what()), failure.message);
    EXPECT_FALSE(e.hint().empty());
  }
}

bool is_mapped(const fs::path& file) {
  void* handle = ::dlopen(file.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (handle) ::dlclose(handle);
  return handle != nullptr;
}

// A context attach() can be called with; the test methods use none of it.
class NoContext : public graft::AttachContext {
 public:
  const std::string& adapter_name() const override { return name_; }
  const graft::Backbone& backbone() const override { throw std::logic_error("no backbone in this test"); }
  std::vector<const graft::Site*> select(graft::SiteKind, const std::vector<std::string>&,
                                         const std::vector<std::int64_t>&) const override {
    return {};
  }
  void register_hook(const graft::Site&, std::shared_ptr<graft::AdapterHook>) override {}
  void declare_prefix(const graft::Site&, std::int64_t) override {}
  std::uint64_t seed() const override { return 0; }
  std::vector<std::int64_t> tokenize(const std::string&) const override { return {}; }

 private:
  std::string name_ = "test";
};

template <class E>
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "no exception of the expected type";
  return {};
}

}  // namespace

TEST(PluginLoader, MissingFileAndDirectory) {
  PluginRegistry registry;
  const std::string text = error_of<graft::PluginError>([&] { registry.load(kRoot / "nowhere" / "libghost.so"); });
  EXPECT_HAS(text, "libghost.so: no such file");
  registry.scan({kRoot / "nowhere"});
  ASSERT_EQ(registry.failures().size(), 1u);
  EXPECT_HAS(registry.failures()[0].message, "nowhere: no such directory");
}

TEST(PluginLoader, EachBrokenPluginHasItsOwnMessage) {
  expect_rejected("not_a_library", {"not a shared library", "not an ELF file"});
  expect_rejected("unresolved", {"has unresolved symbols", "undefined symbol: graft_symbol_nobody_defines"});
  expect_rejected("no_entry", {"no entry symbol 'graft_peft_plugin'", "GRAFT_PLUGIN"});
  expect_rejected("wrong_abi", {"plugin ABI 999.3, this graft supports ABI 2.x (up to 2.1)", "rebuild the plugin"});
  expect_rejected("abi1", {"plugin ABI 1, this graft supports ABI 2.x (up to 2.1)", "rebuild the plugin"});
  expect_rejected("wrong_size", {"struct size 40 bytes, ABI 2.", "rebuild the plugin"});
  expect_rejected("null_info", {"graft_peft_plugin returned null"});
  expect_rejected("missing_fields", {"plugin info has no description, create, destroy"});
  expect_rejected("bad_schema", {"test_bad_schema", "not JSON"});
  expect_rejected("bad_aliases", {"test_bad_aliases", "alias 'wide' must map to a JSON object"});
  expect_rejected("bad_lr", {"plugin default_lr -0.5 is not in [0, 10)"});
}

// ABI 2 is append-only: a plugin of a newer minor (a longer struct, an extension this
// host does not know) loads, and its method works.
TEST(PluginLoader, ANewerMinorVersionWithAnUnknownExtensionLoads) {
  PluginRegistry registry;
  const auto& record = registry.load(lib_of("newer_minor"));
  EXPECT_EQ(record.name, "test_newer_minor");
  EXPECT_TRUE(record.peft_types.empty());
  EXPECT_EQ(registry.create("test_newer_minor", R"({"r": 3})", "--config")->describe(), "null method r=3 mode=a");
}

// What the host reads instead of hard-coding a method's name.
TEST(PluginLoader, MetadataNamesPeftTypesAliasesAndALearningRate) {
  PluginRegistry registry;
  registry.load(lib_of("good_meta"));
  const auto& record = registry.find("test_meta");
  EXPECT_EQ(record.peft_types, (std::vector<std::string>{"NULL", "NULL_TOO"}));
  EXPECT_DOUBLE_EQ(record.default_lr, 0.25);
  ASSERT_NE(registry.find_peft_type("NULL_TOO"), nullptr);
  EXPECT_EQ(registry.find_peft_type("NULL_TOO")->name, "test_meta");
  EXPECT_EQ(registry.find_peft_type("LORA"), nullptr);
  std::string preset;
  ASSERT_NE(registry.find_alias("test_meta_wide", &preset), nullptr);
  EXPECT_EQ(nlohmann::json::parse(preset), nlohmann::json::parse(R"({"r": 64})"));
  EXPECT_EQ(registry.find_alias("nope", &preset), nullptr);
}

TEST(PluginLoader, DuplicateNameKeepsTheFirst) {
  PluginRegistry registry;
  registry.scan({dir_of("good"), dir_of("good_twin")});
  ASSERT_EQ(registry.plugins().size(), 1u);
  EXPECT_EQ(registry.plugins()[0].version, "1.0.0");
  EXPECT_EQ(registry.plugins()[0].file, lib_of("good"));
  ASSERT_EQ(registry.failures().size(), 1u);
  const std::string& text = registry.failures()[0].message;
  EXPECT_HAS(text, "duplicate plugin name 'test_good'");
  EXPECT_HAS(text, lib_of("good").string());
  EXPECT_HAS(text, lib_of("good_twin").string());
}

TEST(PluginLoader, SameFileTwiceIsNotADuplicate) {
  PluginRegistry registry;
  registry.scan({dir_of("good"), dir_of("good") / ".." / "good"});
  EXPECT_EQ(registry.plugins().size(), 1u);
  EXPECT_TRUE(registry.failures().empty());
  EXPECT_EQ(&registry.load(lib_of("good")), &registry.plugins()[0]);
}

TEST(PluginLoader, ThrowingPluginsDoNotTakeTheHostDown) {
  PluginRegistry registry;
  registry.scan({dir_of("throwing_factory"), dir_of("throwing_attach")});
  ASSERT_EQ(registry.plugins().size(), 2u);
  const std::string text =
      error_of<graft::PluginError>([&] { registry.create("test_throwing_factory", "", "--config"); });
  EXPECT_HAS(text, "plugin 'test_throwing_factory' failed to create its method: boom");
  EXPECT_HAS(text, lib_of("throwing_factory").string());

  // attach throwing is the host's to handle; here: it arrives as a plain exception.
  auto method = registry.create("test_throwing_attach", "{}", "--config");
  NoContext context;
  EXPECT_THROW(method->attach(context), std::runtime_error);
  EXPECT_EQ(method->describe(), "null method r=8 mode=a");  // still usable, and destroyed cleanly
}

TEST(PluginLoader, AfterScanningEveryCaseTheGoodPluginWorks) {
  PluginRegistry registry;
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(kRoot)) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());  // "good" before "good_twin"
  registry.scan(dirs);
  std::vector<std::string> names;
  for (const auto& p : registry.plugins()) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"test_good", "test_meta", "test_newer_minor", "houlsby", "test_throwing_attach",
                                              "test_throwing_factory", "test_throwing_odd"}));
  EXPECT_EQ(registry.failures().size(), 12u);

  const auto& good = registry.find("test_good");
  EXPECT_EQ(good.description, "a plugin that loads");
  EXPECT_HAS(good.schema_json, "\"minimum\": 1");

  auto method = registry.create("test_good", R"({"r": 4})", "--config");
  NoContext context;
  method->attach(context);
  EXPECT_EQ(method->describe(), "null method r=4 mode=a");
  EXPECT_EQ(registry.create("test_good", "", "--config")->describe(), "null method r=8 mode=a");

  std::string text = error_of<graft::ConfigError>([&] { registry.create("test_good", R"({"r": 0})", "--config"); });
  EXPECT_HAS(text, "key 'r' = 0 is out of range [1, inf]");
  EXPECT_HAS(text, "--config");
  text = error_of<graft::ConfigError>([&] { registry.create("test_good", R"({"rank": 4})", "--config"); });
  EXPECT_HAS(text, "unknown key 'rank'");
  EXPECT_HAS(text, "accepted keys: mode, r");
  text = error_of<graft::ConfigError>([&] { registry.create("test_good", R"({"mode": "c"})", "--config"); });
  EXPECT_HAS(text, "key 'mode' = \"c\" is not one of [\"a\",\"b\"]");
  text = error_of<graft::ConfigError>([&] { registry.create("test_good", R"({"r": "four"})", "--config"); });
  EXPECT_HAS(text, "key 'r' must be \"integer\"");
  EXPECT_THROW(registry.create("test_good", "{r: 4", "--config"), graft::FormatError);

  text = error_of<graft::PluginError>([&] { registry.find("lora"); });
  EXPECT_HAS(text, "no plugin named 'lora' (loaded: test_good, test_meta, test_newer_minor, houlsby, test_throwing_attach, test_throwing_factory, test_throwing_odd)");
  EXPECT_HAS(text, lib_of("wrong_abi").string());
  EXPECT_HAS(text, "--plugin-dir or GRAFT_PLUGIN_PATH");
}

TEST(PluginLoader, MethodKeepsItsLibraryLoaded) {
  std::shared_ptr<graft::PeftMethod> method;
  {
    PluginRegistry registry;
    registry.load(lib_of("good"));
    method = registry.create("test_good", R"({"r": 2, "mode": "b"})", "test");
  }
  ASSERT_TRUE(is_mapped(lib_of("good")));
  EXPECT_EQ(method->describe(), "null method r=2 mode=b");  // its code is still there
  method.reset();
  EXPECT_FALSE(is_mapped(lib_of("good")));
}

TEST(PluginLoader, RepeatedLoadAndUnload) {
  for (int i = 0; i < 20; ++i) {
    PluginRegistry registry;
    registry.scan({dir_of("good")});
    ASSERT_EQ(registry.create("test_good", "{}", "test")->describe(), "null method r=8 mode=a");
  }
  EXPECT_FALSE(is_mapped(lib_of("good")));
}

TEST(PluginLoader, SearchPathOrder) {
  const char* saved = std::getenv("GRAFT_PLUGIN_PATH");
  const std::string restore = saved ? saved : "";
  ::setenv("GRAFT_PLUGIN_PATH", "/env/a::/env/b:/cli/x", 1);
  const auto dirs = graft::plugin::search_path({"/cli/x", "/cli/y"});
  ASSERT_GE(dirs.size(), 4u);
  EXPECT_EQ(std::vector<fs::path>(dirs.begin(), dirs.begin() + 4),
            (std::vector<fs::path>{"/cli/x", "/cli/y", "/env/a", "/env/b"}));  // /cli/x only once
  for (std::size_t i = 4; i < dirs.size(); ++i) EXPECT_TRUE(fs::is_directory(dirs[i])) << dirs[i];
  ::unsetenv("GRAFT_PLUGIN_PATH");
  EXPECT_EQ(graft::plugin::search_path({"/cli/x"}).front(), fs::path("/cli/x"));
  if (saved) ::setenv("GRAFT_PLUGIN_PATH", restore.c_str(), 1);
}

namespace {

int run(const std::string& command, std::string& out) {
  out.clear();
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return -1;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, n);
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST(PluginsCommand, ListsPluginsAndFailures) {
  const std::string cli = std::string("GRAFT_PLUGIN_PATH= ") + GRAFT_CLI + " plugins";
  const std::string dirs = " --plugin-dir " + dir_of("good").string() + " --plugin-dir=" + dir_of("wrong_abi").string();
  std::string out;
  ASSERT_EQ(run(cli + dirs + " --json", out), 0) << out;
  const auto doc = nlohmann::json::parse(out);
  ASSERT_GE(doc["plugins"].size(), 1u);
  EXPECT_EQ(doc["plugins"][0]["name"], "test_good");
  EXPECT_EQ(doc["plugins"][0]["file"], lib_of("good").string());
  EXPECT_EQ(doc["plugins"][0]["config_schema"]["properties"]["r"]["default"], 8);
  ASSERT_GE(doc["failures"].size(), 1u);
  EXPECT_EQ(doc["failures"][0]["file"], lib_of("wrong_abi").string());
  EXPECT_HAS(doc["failures"][0]["message"].get<std::string>(), "ABI 999.3");

  ASSERT_EQ(run(cli + dirs + " 2>&1", out), 0) << out;
  EXPECT_HAS(out, "test_good 1.0.0");
  EXPECT_HAS(out, "r     integer = 8 in [1, inf]");
  EXPECT_HAS(out, "mode  string = \"a\" one of [\"a\",\"b\"]");
  EXPECT_HAS(out, "1 failed to load");
  EXPECT_HAS(out, "ABI 999.3, this graft supports ABI 2.x");

  EXPECT_EQ(run(cli + " --plugin-dir 2>&1", out), 1);
  EXPECT_HAS(out, "needs a value");
  EXPECT_EQ(run(cli + " extra 2>&1", out), 1);
  EXPECT_HAS(out, "unexpected argument 'extra'");
}

// ---- hostile folders and files on the search path (issue 10) ----------------------

namespace {

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) : path(fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string bytes_of(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const fs::path& file, const std::string& bytes) { std::ofstream(file, std::ios::binary) << bytes; }

const graft::plugin::LoadFailure* failure_for(const PluginRegistry& registry, const fs::path& file) {
  for (const auto& f : registry.failures())
    if (f.file == file) return &f;
  return nullptr;
}

// GRAFT_PLUGIN_PATH cleared for the scope: the tests choose their folders themselves.
struct NoPluginPathEnv {
  std::string saved;
  bool had = false;
  NoPluginPathEnv() {
    if (const char* v = std::getenv("GRAFT_PLUGIN_PATH")) saved = v, had = true;
    ::unsetenv("GRAFT_PLUGIN_PATH");
  }
  ~NoPluginPathEnv() {
    if (had) ::setenv("GRAFT_PLUGIN_PATH", saved.c_str(), 1);
  }
};

}  // namespace

// A symlink loop (or a dangling link) named like a plugin is one failure of its own:
// the folder's other plugins still load.
TEST(PluginLoader, AnUnreadableEntryDoesNotHideTheOthers) {
  TempDir dir("graft_plugin_links");
  fs::create_symlink("libloop.so", dir.path / "libloop.so");
  fs::create_symlink("nothing_here.so", dir.path / "libdangling.so");
  fs::create_symlink(lib_of("good"), dir.path / "libgood.so");
  PluginRegistry registry;
  registry.scan({dir.path});
  ASSERT_EQ(registry.plugins().size(), 1u);
  EXPECT_EQ(registry.plugins()[0].name, "test_good");
  ASSERT_EQ(registry.failures().size(), 2u);
  const auto* loop = failure_for(registry, dir.path / "libloop.so");
  ASSERT_NE(loop, nullptr);
  EXPECT_HAS(loop->message, (dir.path / "libloop.so").string() + ": cannot be read: Too many levels of symbolic links");
  EXPECT_HAS(loop->message, "the folder's other plugins were loaded");
  const auto* dangling = failure_for(registry, dir.path / "libdangling.so");
  ASSERT_NE(dangling, nullptr);
  EXPECT_HAS(dangling->message, "is a symbolic link to a file that does not exist");
}

// Files named .so that are no shared library of this machine: each message says what
// the file is, never the loader's "No such file or directory", and a truncated library
// is refused before the dynamic loader maps it (which would die of SIGBUS).
TEST(PluginLoader, FilesThatAreNotLibrariesSayWhatTheyAre) {
  TempDir dir("graft_plugin_not_libs");
  const std::string good = bytes_of(lib_of("good"));
  ASSERT_GT(good.size(), 4096u);
  write_bytes(dir.path / "libtext.so", "just some text, not a library at all, longer than an ELF header would be........");
  std::string garbage = good.substr(0, 16);  // an ELF identification, then noise
  for (int i = 0; i < 200; ++i) garbage.push_back(static_cast<char>(i * 37 + 11));
  write_bytes(dir.path / "libgarbage.so", garbage);
  write_bytes(dir.path / "libtruncated.so", good.substr(0, good.size() / 3));
  write_bytes(dir.path / "libshort.so", good.substr(0, 40));
  std::string object = good;
  object[16] = 1, object[17] = 0;  // e_type ET_REL
  write_bytes(dir.path / "libobject.so", object);

  PluginRegistry registry;
  registry.scan({dir.path});
  EXPECT_TRUE(registry.plugins().empty());
  ASSERT_EQ(registry.failures().size(), 5u);
  const std::vector<std::pair<std::string, std::string>> want = {
      {"libtext.so", "not a shared library: not an ELF file"},
      {"libgarbage.so", "not a shared library: an ELF file for another machine"},
      {"libtruncated.so", "not a shared library: a truncated ELF file ("},  // segments or section headers
      {"libshort.so", "not a shared library: a truncated ELF file (40 bytes"},
      {"libobject.so", "not a shared library: an ELF object file (.o)"}};
  for (const auto& [name, part] : want) {
    SCOPED_TRACE(name);
    const auto* f = failure_for(registry, dir.path / name);
    ASSERT_NE(f, nullptr);
    EXPECT_HAS(f->message, (dir.path / name).string());
    EXPECT_HAS(f->message, part);
    EXPECT_EQ(f->message.find("No such file or directory"), std::string::npos) << f->message;
    EXPECT_HAS(f->message, "hint:");
  }
}

// The trust model (docs/plugin-guide.md): a plugin named like a shipped one never
// replaces it, whichever is found first; it is reported as a conflict.
TEST(PluginLoader, ShippedPluginKeepsItsName) {
  NoPluginPathEnv no_env;
  const auto shipped = graft::plugin::shipped_plugin_dirs();
  ASSERT_FALSE(shipped.empty()) << "the tests run from the build tree, beside its plugins";
  for (const bool shadow_first : {true, false}) {
    SCOPED_TRACE(shadow_first ? "the shadowing plugin found first (--plugin-dir)" : "the shipped one found first");
    PluginRegistry registry;
    if (shadow_first) {
      registry.scan(graft::plugin::search_path({dir_of("shadow_houlsby")}));
    } else {
      registry.scan(shipped);
      registry.scan({dir_of("shadow_houlsby")});
    }
    const auto& houlsby = registry.find("houlsby");
    EXPECT_NE(houlsby.version, "6.6.6");
    EXPECT_TRUE(fs::equivalent(houlsby.file.parent_path(), shipped[0])) << houlsby.file;
    EXPECT_EQ(std::count_if(registry.plugins().begin(), registry.plugins().end(), [](auto& p) { return p.name == "houlsby"; }), 1);
    const auto conflicts = registry.conflicts();
    ASSERT_EQ(conflicts.size(), 1u);
    EXPECT_EQ(conflicts[0].file, lib_of("shadow_houlsby"));
    EXPECT_HAS(conflicts[0].message, "plugin name 'houlsby' conflicts with the plugin shipped with graft");
    EXPECT_HAS(conflicts[0].message, houlsby.file.string());
    EXPECT_HAS(conflicts[0].message, "GRAFT_PLUGIN_PATH");
    // And what is created is the shipped method.
    auto method = registry.create("houlsby", "{}", "test");
    EXPECT_EQ(method->adapter_config_json().find("\"peft_type\": \"NULL\""), std::string::npos);
  }
  // Two plugins of one name, neither shipped: the first found wins, also a conflict.
  PluginRegistry registry;
  registry.scan({dir_of("good"), dir_of("good_twin")});
  ASSERT_EQ(registry.conflicts().size(), 1u);
  EXPECT_EQ(registry.conflicts()[0].file, lib_of("good_twin"));
}

namespace {

std::string quiet_cli() { return std::string("GRAFT_PLUGIN_PATH= OMP_NUM_THREADS=1 ") + GRAFT_CLI; }
const std::string kTinyBert = std::string(GRAFT_SOURCE_DIR) + "/tests/golden/backbones/tiny_bert";

}  // namespace

// Every command that loads the registry warns about a conflict, not only `graft plugins`,
// and still uses the shipped plugin.
TEST(PluginsCommand, ConflictIsAWarningEverywhere) {
  std::string out;
  const std::string shadow = " --plugin-dir " + dir_of("shadow_houlsby").string();
  ASSERT_EQ(run(quiet_cli() + " info --backbone " + kTinyBert + " --method houlsby" + shadow + " 2>&1", out), 0) << out;
  EXPECT_HAS(out, "graft: warning: plugin: " + lib_of("shadow_houlsby").string() + ": plugin name 'houlsby' conflicts");
  EXPECT_HAS(out, "method houlsby: Houlsby adapters");  // the real one
  ASSERT_EQ(run(quiet_cli() + " plugins" + shadow + " --json", out), 0) << out;
  const auto doc = nlohmann::json::parse(out);
  for (const auto& p : doc["plugins"])
    if (p["name"] == "houlsby") EXPECT_NE(p["version"], "6.6.6");
  ASSERT_EQ(doc["failures"].size(), 1u);
  EXPECT_EQ(doc["failures"][0]["file"], lib_of("shadow_houlsby").string());
}

// A symlink loop in a plugin folder: `graft plugins` still lists the folder's plugins.
TEST(PluginsCommand, SymlinkLoopIsSkippedWithADiagnostic) {
  TempDir dir("graft_plugins_cli_loop");
  fs::create_symlink("libloop.so", dir.path / "libloop.so");
  fs::create_symlink(lib_of("good"), dir.path / "libgood.so");
  std::string out;
  ASSERT_EQ(run(quiet_cli() + " plugins --plugin-dir " + dir.path.string() + " 2>&1", out), 0) << out;
  EXPECT_HAS(out, "test_good 1.0.0");
  EXPECT_HAS(out, "libloop.so: cannot be read: Too many levels of symbolic links");
}

// A plugin throwing something that is not a std::exception, in attach() or in a hook
// during training: an error naming the plugin and the call, exit status 1, never
// "internal error: unknown exception".
TEST(PluginsCommand, NonStandardExceptionNamesThePluginAndTheCall) {
  TempDir dir("graft_plugins_odd");
  const std::string train = quiet_cli() + " train --backbone " + kTinyBert + " --task sst2 --data " + GRAFT_SHARED_DIR +
                            "/data/glue --train-rows 16 --dev-rows 8 --batch-size 8 --max-steps 2 --no-progress --method "
                            "test_throwing_odd --plugin-dir " +
                            dir_of("throwing_odd").string();
  std::string out;
  EXPECT_EQ(run(train + " --config '{\"mode\": \"a\"}' --output " + (dir.path / "a").string() + " 2>&1", out), 1) << out;
  EXPECT_HAS(out, "attaching adapter 'task' (method 'test_throwing_odd') failed");
  EXPECT_HAS(out, "plugin 'test_throwing_odd' threw an exception that is not a std::exception in its attach()");
  EXPECT_EQ(out.find("internal error"), std::string::npos) << out;

  EXPECT_EQ(run(train + " --config '{\"mode\": \"b\"}' --output " + (dir.path / "b").string() + " 2>&1", out), 1) << out;
  EXPECT_HAS(out, "plugin 'test_throwing_odd' threw an exception that is not a std::exception in its linear hook at site "
                  "'layers.0.attention.query'");
  EXPECT_HAS(out, "hint: a plugin must throw graft::Error or std::exception");
  EXPECT_EQ(out.find("internal error"), std::string::npos) << out;
}
