// The `graft` subcommands. Each command is one function in its own file
// (cli/<command>.cpp), taking the arguments after the command name and returning the
// process exit code; main.cpp only dispatches and turns exceptions into messages.
#pragma once
#include <string>
#include <vector>

namespace graft::cli {

// graft inspect FILE.safetensors: one row per tensor (name, dtype, shape, bytes).
int cmd_inspect(const std::vector<std::string>& args);

}  // namespace graft::cli
