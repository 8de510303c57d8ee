// graft export --backbone B --adapter DIR --merged --output DIR
// A Hugging Face model folder with the adapter's weight deltas folded in
// (Session::export_merged), which transformers and graft load as a plain backbone.
#include <fmt/format.h>

#include "cli/adapter_options.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "graft/error.h"
#include "graft/session.h"

namespace graft::cli {

int cmd_export(const std::vector<std::string>& argv) {
  Args args("export", argv,
            {{.name = "backbone", .help = "the Hugging Face model folder the adapter was trained on", .example = ".cache/models/all-MiniLM-L6-v2", .required = true},
             {.name = "adapter", .help = "the adapter folder to fold in (LoRA, DoRA, (IA)³)", .example = "runs/sst2-lora/best", .required = true},
             {.name = "output", .help = "the new model folder to write (must not exist)", .example = "runs/sst2-lora/merged", .required = true},
             {.name = "merged", .takes_value = false, .help = "fold the adapter into the weights (required: the only export there is)"},
             plugin_dir_option()});
  if (!args.positional().empty())
    throw ConfigError("export", fmt::format("unexpected argument '{}'", args.positional().front()),
                      "usage: graft export --backbone B --adapter DIR --merged --output DIR");
  if (!args.has("merged"))
    throw ConfigError("export", "graft export writes merged checkpoints only: pass --merged",
                      "an unmerged adapter needs no export: its folder (adapter_config.json + adapter_model.safetensors) "
                      "loads beside the backbone in graft and in Hugging Face PEFT as it is");
  if (args.values("adapter").size() > 1)
    throw ConfigError("export", fmt::format("export folds one adapter, not {}", args.values("adapter").size()),
                      "give one --adapter DIR (NAME=DIR also works); export each adapter on its own");
  // f32 whatever the checkpoint holds: folding is done in f32, and the file keeps its dtype.
  SessionOptions options;
  for (const auto& dir : args.values("plugin-dir")) options.plugin_dirs.emplace_back(dir);
  Session session(args.require("backbone"), options);
  const std::string name = load_adapters(session, args, "adapter").front();
  const ExportSummary s = session.export_merged(name, args.get("output"));
  fmt::print("exported '{}': the {} adapter '{}' folded into {} of {} tensors ({}), beside {}\n", s.folder.string(), s.method,
             args.values("adapter").front(), s.changed.size(), s.tensors, s.weights_dtype, fmt::join(s.files, ", "));
  for (const auto& note : s.notes) fmt::print("note: {}\n", note);
  return 0;
}

}  // namespace graft::cli
