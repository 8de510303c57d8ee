#include <fmt/format.h>

#include "graft/error.h"
#include "graft/task.h"

namespace graft {

TaskKind parse_task_kind(const std::string& name) {
  if (name == "classification") return TaskKind::classification;
  if (name == "regression") return TaskKind::regression;
  if (name == "token_classification") return TaskKind::token_classification;
  if (name == "causal_lm") return TaskKind::causal_lm;
  throw ConfigError("head", fmt::format("unknown task kind '{}'", name),
                    "use classification, regression, token_classification or causal_lm");
}

const char* task_kind_name(TaskKind kind) {
  switch (kind) {
    case TaskKind::classification: return "classification";
    case TaskKind::regression: return "regression";
    case TaskKind::token_classification: return "token_classification";
    case TaskKind::causal_lm: return "causal_lm";
  }
  return "?";
}

}  // namespace graft
