#include <fmt/format.h>

#include "graft/backbone.h"
#include "graft/error.h"

namespace graft {

Tensor Backbone::lm_logits(const Tensor&) const {
  throw ConfigError("backbone", fmt::format("a {} backbone has no language-model head", info().architecture),
                    "causal language modelling needs a decoder backbone (llama)");
}

std::unique_ptr<DecodingCache> Backbone::new_decoding_cache() const {
  throw ConfigError("backbone", fmt::format("a {} backbone cannot generate text", info().architecture),
                    "use a decoder (llama2.c or LLaMA) backbone");
}

Tensor Backbone::forward_cached(const Tensor&, DecodingCache&, ForwardHooks*) const {
  new_decoding_cache();  // throws: a backbone without a cache of its own cannot decode
  return Tensor();
}

}  // namespace graft
