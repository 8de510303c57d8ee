// graft generate --backbone PATH [--prompt TEXT] [--temperature T] [--top-p P]
//                [--max-tokens N] [--seed S] [--dtype f32|bf16]
#include <fmt/format.h>

#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "graft/error.h"
#include "model/generation.h"
#include "model/backbone_registry.h"
#include "text/llama2c_tokenizer.h"

namespace graft::cli {

int cmd_generate(const std::vector<std::string>& argv) {
  Args args("generate", argv,
            {{.name = "backbone", .help = "a llama2.c .bin or a LLaMA folder", .example = "stories260K.bin", .required = true},
             {.name = "prompt", .help = "text to continue", .example = "'Once upon a time'", .default_note = "empty"},
             {.name = "temperature", .help = "sampling temperature in [0, 100]; 0 = greedy", .value = "0", .example = "0.8"},
             {.name = "top-p", .help = "nucleus mass in (0, 1]", .value = "1", .example = "0.9"},
             {.name = "max-tokens", .help = "tokens to generate", .value = "128", .example = "64"},
             {.name = "seed", .help = "sampling seed", .value = "0", .example = "7"}, dtype_option()});
  auto loaded = model::load_backbone(args.require("backbone"), model::parse_dtype(args.get("dtype")));
  const Backbone* model = loaded.model.get();
  if (!model->info().causal)
    throw ConfigError("generate", fmt::format("a {} backbone cannot generate text", model->info().architecture),
                      "use a decoder (llama2.c or LLaMA) backbone");
  if (!loaded.tokenizer)
    throw ConfigError("generate", "no tokenizer found beside the model",
                      "put the llama2.c tokenizer (tokN.bin or tokenizer.bin) next to the checkpoint, or "
                      "tokenizer.json in the Hugging Face folder");
  model::GenerationConfig config;
  config.temperature = static_cast<float>(args.number("temperature", 0, 100));
  config.top_p = static_cast<float>(args.number("top-p", 1e-6, 1));
  config.max_new_tokens = args.integer("max-tokens", 1, 1 << 20);
  config.seed = static_cast<std::uint64_t>(args.integer("seed", 0, INT64_MAX));
  const std::string prompt = args.get("prompt");
  if (auto* llama2c = dynamic_cast<text::Llama2cTokenizer*>(loaded.tokenizer.get())) {
    // llama2.c pieces decode one at a time (a leading space depends on the previous id).
    const std::vector<std::int64_t> ids = llama2c->encode_ids(prompt, true, false);
    fmt::print("{}", prompt);
    std::int64_t previous = ids.back();
    model::generate(*model, ids, config, nullptr, [&](std::int64_t id) {
      fmt::print("{}", llama2c->decode(previous, id));
      std::fflush(stdout);
      previous = id;
    });
  } else {
    // Other tokenizers decode whole sequences: print what each new id adds to the text,
    // holding back an incomplete UTF-8 character (U+FFFD at the end).
    std::vector<std::int64_t> ids = loaded.tokenizer->encode(prompt, {}, false, model->info().max_positions).ids;
    std::string shown = loaded.tokenizer->decode(ids);
    fmt::print("{}", prompt);
    model::generate(*model, ids, config, nullptr, [&](std::int64_t id) {
      ids.push_back(id);
      const std::string text = loaded.tokenizer->decode(ids);
      const bool incomplete = text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0;
      if (incomplete || text.compare(0, shown.size(), shown) != 0) return;
      fmt::print("{}", text.substr(shown.size()));
      std::fflush(stdout);
      shown = text;
    });
  }
  fmt::print("\n");
  return 0;
}

}  // namespace graft::cli
