// The baselines every comparison needs, as methods behind the same PeftMethod interface
// and GraftPluginInfo as a plugin, compiled into libgraft: "head" (a linear probe: the
// task head alone is trained) and "full" (full fine-tuning: every backbone weight).
// The registry offers them beside the loaded plugins; the host hard-codes no method.
#pragma once
#include <vector>

#include "graft/plugin.h"

namespace graft::plugin {

const std::vector<const GraftPluginInfo*>& builtin_methods();

}  // namespace graft::plugin
