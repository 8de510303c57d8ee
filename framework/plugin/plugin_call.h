// Calls from the host into plugin code. Whatever a plugin throws arrives as a host-made
// graft::Error: a graft error is copied (same class, same text), anything else becomes
// a PluginError naming the plugin and the call. The plugin's own exception object never
// propagates: its vtable is the plugin's code, which may be unloaded before the catch.
#pragma once
#include <string>
#include <utility>

#include "graft/error.h"

namespace graft::plugin {

// A copy of `e` made by the host, of the same graft::Error subclass.
[[noreturn]] void rethrow_host_copy(const Error& e);

// Call from inside a catch (...) around plugin code: throws the host-made error for the
// exception in flight. `call` says what was called ("its attach()", "its linear hook at
// site 'layers.0.attention.query'").
[[noreturn]] void rethrow_from_plugin(const std::string& plugin, const std::string& call);

template <class F>
decltype(auto) call_plugin(const std::string& plugin, const std::string& call, F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (...) {
    rethrow_from_plugin(plugin, call);
  }
}

}  // namespace graft::plugin
