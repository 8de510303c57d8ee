// --adapter (repeatable: DIR, or NAME=DIR) and --compose EXPR, as eval, predict, embed,
// generate and train take them: several saved adapters loaded into one session and the
// composition a call runs them in (docs/composition.md).
#pragma once
#include <string>
#include <vector>

#include "cli/args.h"
#include "graft/session.h"

namespace graft::cli {

OptionSpec adapter_option(const std::string& help, bool required);
OptionSpec compose_option();

// Loads every --adapter into `session`: a lone bare DIR is named `single_name`, several
// need NAME=DIR. Returns the names in the order given.
std::vector<std::string> load_adapters(Session& session, const Args& args, const std::string& single_name);
// --compose parsed, else the loaded adapters stacked in the order given (none: none).
Selection composition(const Args& args, const std::vector<std::string>& names);

}  // namespace graft::cli
