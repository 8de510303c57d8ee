// The baselines every comparison needs, as methods behind the same PeftMethod interface
// and GraftPluginInfo as a plugin, compiled into libgraft: "head" (a linear probe: the
// task head alone is trained), "full" (full fine-tuning: every backbone weight) and
// "fusion" (AdapterFusion over other adapters: plugin/fusion.h).
// The registry offers them beside the loaded plugins; the host hard-codes no method.
#pragma once
#include <vector>

#include "graft/plugin.h"

namespace graft::plugin {

const std::vector<const GraftPluginInfo*>& builtin_methods();

}  // namespace graft::plugin
