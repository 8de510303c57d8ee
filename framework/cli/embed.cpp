// graft embed --backbone DIR [--adapter DIR] [--pooling mean|cls] [--no-normalize] TEXT...
// Sentence embeddings pooled and normalised as sentence-transformers does for the model
// (its 1_Pooling/config.json and sentence_bert_config.json), optionally through an adapter.
#include <fmt/format.h>

#include "cli/adapter_options.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/method_options.h"
#include "graft/error.h"
#include "graft/session.h"

namespace graft::cli {

int cmd_embed(const std::vector<std::string>& argv) {
  Args args("embed", argv,
            {{.name = "backbone", .help = "an encoder model folder", .example = ".cache/models/all-MiniLM-L6-v2", .required = true},
             adapter_option("an adapter folder to embed through", false), compose_option(),
             {.name = "pooling", .help = "mean or cls", .example = "cls", .default_note = "the folder's 1_Pooling/config.json, else mean"},
             {.name = "no-normalize", .takes_value = false, .help = "skip L2 normalisation"}, dtype_option(), plugin_dir_option()});
  if (args.positional().empty()) throw ConfigError("embed", "no text given", "usage: graft embed --backbone DIR TEXT...");
  Session session = open_session(args);
  if (!session.has_tokenizer())
    throw ConfigError("embed", "no tokenizer found in the model folder", "it needs vocab.txt or tokenizer.json");
  const Selection selection = composition(args, load_adapters(session, args, "adapter"));
  EmbedOptions options;
  if (args.has("pooling")) options.pooling = parse_pooling(args.get("pooling"));
  options.normalize = !args.has("no-normalize");
  for (const auto& row : session.embed(args.positional(), selection, options)) {
    std::vector<std::string> values;
    for (const float v : row) values.push_back(fmt::format("{:.6f}", v));
    fmt::print("[{}]\n", fmt::join(values, ", "));
  }
  return 0;
}

}  // namespace graft::cli
