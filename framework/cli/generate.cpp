// graft generate --backbone PATH [--adapter DIR] [--prompt TEXT] [--temperature T]
//                [--top-p P] [--max-tokens N] [--seed S] [--dtype f32|bf16]
#include <fmt/format.h>

#include <cstdio>

#include "cli/adapter_options.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/method_options.h"
#include "graft/error.h"
#include "graft/session.h"

namespace graft::cli {

int cmd_generate(const std::vector<std::string>& argv) {
  Args args("generate", argv,
            {{.name = "backbone", .help = "a llama2.c .bin or a LLaMA folder", .example = "stories260K.bin", .required = true},
             adapter_option("an adapter folder to generate through", false), compose_option(),
             {.name = "prompt", .help = "text to continue", .example = "'Once upon a time'", .default_note = "empty"},
             {.name = "temperature", .help = "sampling temperature in [0, 100]; 0 = greedy", .value = "0", .example = "0.8"},
             {.name = "top-p", .help = "nucleus mass in (0, 1]", .value = "1", .example = "0.9"},
             {.name = "max-tokens", .help = "tokens to generate", .value = "128", .example = "64"},
             {.name = "seed", .help = "sampling seed", .value = "0", .example = "7"}, dtype_option(), plugin_dir_option()});
  Session session = open_session(args);
  if (!session.backbone_info().causal)
    throw ConfigError("generate", fmt::format("a {} backbone cannot generate text", session.backbone_info().architecture),
                      "use a decoder (llama2.c or LLaMA) backbone");
  if (!session.has_tokenizer())
    throw ConfigError("generate", "no tokenizer found beside the model",
                      "put the llama2.c tokenizer (tokN.bin or tokenizer.bin) next to the checkpoint, or "
                      "tokenizer.json in the Hugging Face folder");
  const Selection selection = composition(args, load_adapters(session, args, "adapter"));
  GenerateOptions options;
  options.temperature = static_cast<float>(args.number("temperature", 0, 100));
  options.top_p = static_cast<float>(args.number("top-p", 1e-6, 1));
  options.max_new_tokens = args.integer("max-tokens", 1, 1 << 20);
  options.seed = static_cast<std::uint64_t>(args.integer("seed", 0, INT64_MAX));
  const std::string prompt = args.get("prompt");
  fmt::print("{}", prompt);
  session.generate(prompt, selection, options, [](const std::string& piece) {
    fmt::print("{}", piece);
    std::fflush(stdout);
  });
  fmt::print("\n");
  return 0;
}

}  // namespace graft::cli
