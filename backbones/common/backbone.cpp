#include <fmt/format.h>

#include "graft/backbone.h"
#include "graft/error.h"

namespace graft {

Tensor Backbone::lm_logits(const Tensor&) const {
  throw ConfigError("backbone", fmt::format("a {} backbone has no language-model head", info().architecture),
                    "causal language modelling needs a decoder backbone (llama)");
}

}  // namespace graft
