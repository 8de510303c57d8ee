#include "cli/adapter_options.h"

#include <fmt/format.h>

#include "cli/method_options.h"
#include "graft/error.h"

namespace graft::cli {

OptionSpec adapter_option(const std::string& help, bool required) {
  return {.name = "adapter",
          .help = help + "; repeat as NAME=DIR to load several",
          .example = "runs/sst2-lora/best",
          .default_note = required ? "" : "none",
          .required = required};
}

OptionSpec compose_option() {
  return {.name = "compose",
          .help = "how the adapters run together: stack(a,b), parallel(a,b), average(a:0.7,b:0.3), fuse(a,b), nested "
                  "(docs/composition.md)",
          .example = "'stack(lang,task)'",
          .default_note = "the adapters stacked in the order given"};
}

std::vector<std::string> load_adapters(Session& session, const Args& args, const std::string& single_name) {
  const std::vector<std::string> given = args.values("adapter");
  std::vector<std::string> names;
  for (const auto& value : given) {
    const auto eq = value.find('=');
    std::string name = single_name, folder = value;
    if (eq != std::string::npos && eq > 0) {
      name = value.substr(0, eq);
      folder = value.substr(eq + 1);
    } else if (given.size() > 1) {
      throw ConfigError("cli", fmt::format("--adapter '{}' needs a name when several adapters are loaded", value),
                        fmt::format("write --adapter NAME={}", value));
    }
    with_plugin_warnings(session, [&] { session.load_adapter(name, folder); });
    names.push_back(name);
  }
  return names;
}

Selection composition(const Args& args, const std::vector<std::string>& names) {
  if (args.has("compose")) return Selection::parse(args.get("compose"));
  return names.empty() ? Selection::none() : Selection::stack(names);
}

}  // namespace graft::cli
