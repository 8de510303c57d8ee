#include "cli/commands.h"

namespace graft::cli {

const std::vector<CommandInfo>& command_table() {
  static const std::vector<CommandInfo> table = {
      {"compare", cmd_compare, "compare --backbone B --task T [--methods A,B,...] [options]", "train several methods alike and tabulate"},
      {"embed", cmd_embed, "embed --backbone DIR [options] TEXT...", "sentence embeddings from an encoder"},
      {"eval", cmd_eval, "eval --backbone B --adapter DIR --task T [options]", "dev-set metrics of a saved adapter"},
      {"export", cmd_export, "export --backbone B --adapter DIR --merged --output DIR", "a Hugging Face checkpoint with the adapter folded in"},
      {"generate", cmd_generate, "generate --backbone PATH [--prompt TEXT] [options]", "continue a text with a decoder"},
      {"info", cmd_info, "info --backbone PATH [options]", "describe a backbone and its sites"},
      {"inspect", cmd_inspect, "inspect FILE.safetensors", "list the tensors of a safetensors file"},
      {"merge", cmd_merge, "merge --backbone B --adapter NAME=DIR... --combine C [--weights W,...] --output DIR [options]", "merge adapters into a new one (PEFT's add_weighted_adapter)"},
      {"plugins", cmd_plugins, "plugins [--plugin-dir DIR]... [--json]", "list the plugins found and why others failed"},
      {"predict", cmd_predict, "predict --backbone B --adapter DIR [options] TEXT...", "predictions of a saved adapter"},
      {"serve", cmd_serve, "serve --backbone B [--adapter NAME=DIR]... [--port P] [options]", "serve predictions, embeddings and completions over HTTP"},
      {"train", cmd_train, "train --backbone B --task T --method M --output DIR [options]", "train one PEFT method on a task"},
  };
  return table;
}

const CommandInfo* find_command(const std::string& name) {
  for (const auto& c : command_table())
    if (name == c.name) return &c;
  return nullptr;
}

}  // namespace graft::cli
