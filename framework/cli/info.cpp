// graft info --backbone PATH [--dtype f32|bf16]: the model and its site catalogue.
#include <fmt/format.h>

#include <map>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/method_options.h"
#include "cli/task_options.h"
#include "graft/error.h"
#include "graft/session.h"
#include "ops/op_util.h"

namespace graft::cli {

int cmd_info(const std::vector<std::string>& argv) {
  Args args("info", argv,
            {{.name = "backbone", .help = "a model folder or llama2.c .bin", .example = ".cache/models/all-MiniLM-L6-v2", .required = true},
             dtype_option(),
             {.name = "method", .help = "a PEFT method (plugin name) to attach", .example = "lora", .default_note = "none"},
             {.name = "config", .help = "the method's config: JSON or @file", .example = "'{\"r\": 8}'",
              .default_note = "the method's defaults"},
             plugin_dir_option()});
  Session session = open_session(args);
  const BackboneInfo& info = session.backbone_info();
  fmt::print("backbone      {}\n", info.source);
  fmt::print("architecture  {} ({})\n", info.architecture, info.causal ? "decoder" : "encoder");
  fmt::print("layers        {}\n", info.num_layers);
  fmt::print("hidden size   {}\n", info.hidden_size);
  fmt::print("heads         {} query, {} key/value\n", info.num_heads, info.num_kv_heads);
  fmt::print("ffn size      {}\n", info.intermediate_size);
  fmt::print("vocabulary    {}\n", info.vocab_size);
  fmt::print("positions     {}\n", info.max_positions);
  // Whether bf16 pays here: the CPU multiplies bf16 natively, or each product widens.
  const char* bf16_note = info.dtype != DType::bf16      ? ""
                          : ops::bf16_matmul_native() ? " (products in bf16: this CPU multiplies bf16 natively)"
                                                      : " (widened to f32 for each product: this CPU has no native bf16)";
  fmt::print("parameters    {} ({:.2f} M), frozen weights in {}{}\n", info.parameter_count, info.parameter_count / 1e6,
             dtype_name(info.dtype), bf16_note);
  fmt::print("tokenizer     {}\n", session.has_tokenizer() ? session.tokenizer_summary() : "none found");

  // Sites, grouped: one line per module, with the layers it appears in.
  std::map<std::pair<int, std::string>, std::vector<int>> groups;
  for (const Site& s : session.sites()) groups[{static_cast<int>(s.kind), s.module}].push_back(s.layer);
  fmt::print("\nsites ({} in all; name = layers.N.<module>, or the module alone outside layers)\n", session.sites().size());
  fmt::print("  {:<18} {:<20} {:<10} {}\n", "kind", "module", "layers", "shape");
  for (const auto& [key, layers] : groups) {
    const Site* example = nullptr;
    for (const Site& s : session.sites())
      if (static_cast<int>(s.kind) == key.first && s.module == key.second) example = &s;
    const std::string where = layers.front() < 0 ? "-" : fmt::format("0-{}", layers.back());
    const std::string shape = example->kind == SiteKind::head ? fmt::format("{} -> the task's outputs", example->in_features)
                              : example->kind == SiteKind::linear
                                  ? fmt::format("{} -> {}", example->in_features, example->out_features)
                                  : example->kind == SiteKind::attention_kv
                                        ? fmt::format("{} kv heads x {}", example->num_kv_heads, example->head_dim)
                                        : fmt::format("hidden {}", example->out_features);
    fmt::print("  {:<18} {:<20} {:<10} {}\n", site_kind_name(example->kind), key.second, where, shape);
  }

  if (args.has("method")) {
    const MethodConfig config = method_config(args);
    with_plugin_warnings(session, [&] { session.add_adapter("task", args.get("method"), config.json, 0, config.origin); });
    const AdapterInfo adapter = session.adapter("task");
    fmt::print("\nmethod {}: {}\n", args.get("method"), adapter.description);
    fmt::print("trainable parameters {} = {:.3f}% of the backbone's {}\n", adapter.trainable_parameters,
               100.0 * static_cast<double>(adapter.trainable_parameters) / static_cast<double>(info.parameter_count),
               info.parameter_count);
  }
  return 0;
}

}  // namespace graft::cli
