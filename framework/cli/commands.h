// The `graft` subcommands. Each command is one function in its own file
// (cli/<command>.cpp), taking the arguments after the command name and returning the
// process exit code; main.cpp only dispatches and turns exceptions into messages.
// `graft COMMAND --help` prints the command's usage and summary (below) and its options.
#pragma once
#include <string>
#include <vector>

namespace graft::cli {

// graft inspect FILE.safetensors: one row per tensor (name, dtype, shape, bytes).
int cmd_inspect(const std::vector<std::string>& args);
// graft info --backbone PATH: architecture, sizes, parameters and the site catalogue.
int cmd_info(const std::vector<std::string>& args);
// graft embed --backbone DIR TEXT...: pooled, normalised sentence embeddings.
int cmd_embed(const std::vector<std::string>& args);
// graft train --backbone B --task T --method M --output DIR: one method on one task.
int cmd_train(const std::vector<std::string>& args);
// graft compare --backbone B --task T --methods ...: every method, same data and budget.
int cmd_compare(const std::vector<std::string>& args);
// graft eval --backbone B --adapter DIR --task T: dev metrics of a saved adapter.
int cmd_eval(const std::vector<std::string>& args);
// graft merge --backbone B --adapter a=DIR --adapter b=DIR --combine C --output DIR: a merged adapter.
int cmd_merge(const std::vector<std::string>& args);
// graft predict --backbone B --adapter DIR TEXT...: predictions on new inputs.
int cmd_predict(const std::vector<std::string>& args);
// graft generate --backbone PATH --prompt TEXT: greedy / temperature / top-p sampling.
int cmd_generate(const std::vector<std::string>& args);
// graft export --backbone B --adapter DIR --merged --output DIR: a merged HF checkpoint.
int cmd_export(const std::vector<std::string>& args);
// graft plugins [--plugin-dir DIR]... [--json]: the plugins found, and the files that failed.
int cmd_plugins(const std::vector<std::string>& args);
// graft serve --backbone B [--adapter NAME=DIR]...: the HTTP server (docs/serving.md).
int cmd_serve(const std::vector<std::string>& args);

struct CommandInfo {
  const char* name;
  int (*run)(const std::vector<std::string>&);
  const char* usage;  // after "graft "
  const char* summary;
};
const std::vector<CommandInfo>& command_table();
const CommandInfo* find_command(const std::string& name);  // nullptr when unknown

}  // namespace graft::cli
