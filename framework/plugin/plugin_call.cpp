#include "plugin/plugin_call.h"

#include <fmt/format.h>

#include <exception>

namespace graft::plugin {

void rethrow_host_copy(const Error& e) {
  if (dynamic_cast<const ConfigError*>(&e)) throw ConfigError(e.component(), e.message(), e.hint());
  if (dynamic_cast<const FormatError*>(&e)) throw FormatError(e.component(), e.message(), e.hint());
  if (dynamic_cast<const IoError*>(&e)) throw IoError(e.component(), e.message(), e.hint());
  if (dynamic_cast<const ShapeError*>(&e)) throw ShapeError(e.component(), e.message(), e.hint());
  if (dynamic_cast<const BackendError*>(&e)) throw BackendError(e.component(), e.message(), e.hint());
  if (dynamic_cast<const PluginError*>(&e)) throw PluginError(e.component(), e.message(), e.hint());
  throw Error(e.component(), e.message(), e.hint());
}

void rethrow_from_plugin(const std::string& plugin, const std::string& call) {
  try {
    throw;
  } catch (const Error& e) {
    rethrow_host_copy(e);
  } catch (const std::exception& e) {
    throw PluginError("plugin", fmt::format("plugin '{}' failed in {}: {}", plugin, call, e.what()),
                      "the error comes from the plugin's code; `graft plugins` shows which file provides it");
  } catch (...) {
    throw PluginError("plugin",
                      fmt::format("plugin '{}' threw an exception that is not a std::exception in {}", plugin, call),
                      "a plugin must throw graft::Error or std::exception (docs/plugin-guide.md, ABI rules); report it to "
                      "the plugin's author, `graft plugins` shows which file provides it");
  }
}

}  // namespace graft::plugin
