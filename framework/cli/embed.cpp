// graft embed --backbone DIR [--pooling mean|cls] [--no-normalize] TEXT...
// Sentence embeddings pooled and normalised as sentence-transformers does for the model.
#include <fmt/format.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "train/pooling.h"
#include "graft/autograd.h"
#include "graft/error.h"
#include "io/json_config.h"
#include "model/backbone_registry.h"

namespace graft::cli {

namespace {

// sentence-transformers folders say how they pool (1_Pooling/config.json) and how long
// inputs may be (sentence_bert_config.json); plain folders default to mean and 512.
Pooling folder_pooling(const std::filesystem::path& folder) {
  const auto file = folder / "1_Pooling" / "config.json";
  if (!std::filesystem::exists(file)) return Pooling::mean;
  const auto j = io::load_json(file);
  if (io::optional_key<bool>(j, "pooling_mode_cls_token", false, file.string())) return Pooling::cls;
  return Pooling::mean;
}

std::size_t folder_max_length(const std::filesystem::path& folder, std::int64_t positions) {
  const auto file = folder / "sentence_bert_config.json";
  std::int64_t length = positions;
  if (std::filesystem::exists(file))
    length = io::optional_key<std::int64_t>(io::load_json(file), "max_seq_length", positions, file.string());
  return static_cast<std::size_t>(std::min(length, positions));
}

}  // namespace

int cmd_embed(const std::vector<std::string>& argv) {
  Args args("embed", argv,
            {{.name = "backbone", .help = "an encoder model folder", .example = ".cache/models/all-MiniLM-L6-v2", .required = true},
             {.name = "pooling", .help = "mean or cls", .example = "cls", .default_note = "the folder's 1_Pooling/config.json, else mean"},
             {.name = "no-normalize", .takes_value = false, .help = "skip L2 normalisation"}, dtype_option()});
  const std::filesystem::path folder = args.require("backbone");
  if (args.positional().empty()) throw ConfigError("embed", "no text given", "usage: graft embed --backbone DIR TEXT...");
  auto loaded = model::load_backbone(folder, model::parse_dtype(args.get("dtype")));
  if (!loaded.tokenizer) throw ConfigError("embed", "no tokenizer found in the model folder", "it needs vocab.txt or tokenizer.json");
  const auto pooling = args.has("pooling") ? parse_pooling(args.get("pooling")) : folder_pooling(folder);
  const std::size_t max_length = folder_max_length(folder, loaded.model->info().max_positions);
  std::vector<text::Encoding> encodings;
  for (const auto& text : args.positional()) encodings.push_back(loaded.tokenizer->encode(text, {}, false, max_length));
  NoGradGuard no_grad;
  const Batch batch = text::make_batch(encodings, loaded.tokenizer->pad_id());
  Tensor pooled = train::pool(loaded.model->forward(batch), batch.attention_mask, pooling);
  if (!args.has("no-normalize")) pooled = train::l2_normalize(pooled);
  const auto values = pooled.to_floats();
  const std::int64_t H = pooled.dim(1);
  for (std::size_t i = 0; i < args.positional().size(); ++i) {
    std::vector<std::string> row;
    for (std::int64_t j = 0; j < H; ++j) row.push_back(fmt::format("{:.6f}", values[i * H + j]));
    fmt::print("[{}]\n", fmt::join(row, ", "));
  }
  return 0;
}

}  // namespace graft::cli
