// Options shared by the commands that open a Session: --backbone, --dtype,
// --plugin-dir (repeatable, searched before GRAFT_PLUGIN_PATH) and --config (inline
// JSON, or @file).
#pragma once
#include <string>

#include "cli/args.h"
#include "graft/session.h"

namespace graft::cli {

struct MethodConfig {
  std::string json;    // "" for the method's defaults
  std::string origin;  // "--config" or the file name, for error messages
};

// --config '{"r": 8}' or --config @lora.json; absent: defaults.
MethodConfig method_config(const Args& args);
// A Session on --backbone with --dtype and the --plugin-dir folders.
Session open_session(const Args& args);
// Plugin warnings (a name two plugins claim) to stderr, once the session has scanned.
void print_warnings(const Session& session);
// Runs `add` (which adds or loads an adapter) and prints the plugin warnings, whether
// it succeeds or throws.
template <class F>
void with_plugin_warnings(const Session& session, F&& add) {
  try {
    add();
  } catch (...) {
    print_warnings(session);
    throw;
  }
  print_warnings(session);
}

}  // namespace graft::cli
