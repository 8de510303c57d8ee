// Loads, uses and unloads the good test plugin N times, a fresh registry each time, to
// be run under valgrind: any definite leak in the loader or the plugin path shows up N
// times. Exits 1 if the library is still mapped after the last reference goes.
#include <dlfcn.h>
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>

#include "graft/error.h"
#include "plugin/loader.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    fmt::print(stderr, "usage: plugin_leak_check PLUGIN_DIR N\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const int n = std::atoi(argv[2]);
  try {
    for (int i = 0; i < n; ++i) {
      std::shared_ptr<graft::PeftMethod> method;
      std::filesystem::path file;
      {
        graft::plugin::PluginRegistry registry;
        registry.scan({dir});
        if (registry.plugins().size() != 1 || !registry.failures().empty()) {
          fmt::print(stderr, "expected exactly one plugin in {}\n", dir.string());
          return 1;
        }
        file = registry.plugins()[0].file;
        method = registry.create(registry.plugins()[0].name, R"({"r": 4})", "leak_check");
      }
      if (method->describe().empty()) return 1;  // still callable after the registry is gone
      method.reset();
      // RTLD_NOLOAD: a handle only if the library is still mapped (it must not be).
      if (void* handle = ::dlopen(file.c_str(), RTLD_NOW | RTLD_NOLOAD)) {
        ::dlclose(handle);
        fmt::print(stderr, "{} is still loaded after its last method was destroyed\n", file.string());
        return 1;
      }
    }
  } catch (const graft::Error& e) {
    fmt::print(stderr, "{}\n", e.what());
    return 1;
  }
  fmt::print("{} load/create/destroy/unload cycles\n", n);
  return 0;
}
