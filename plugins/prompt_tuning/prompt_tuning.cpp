// Prompt tuning (Lester et al. 2021) as Hugging Face PEFT implements it: n trained
// virtual-token embeddings [n, hidden] prepended to the token embeddings. The backbone
// assigns positions after the hook, so virtual tokens take positions 0..n-1 and the real
// tokens shift by n (BERT also gives them segment 0), exactly as PEFT's
// cat(prompts, inputs_embeds). Saved as PEFT saves it: one tensor prompt_embeddings.
//
// Per-row selection: every row gets the n extra positions (a batch has one length); rows
// the adapter does not own get zero vectors there, masked out as keys, so nothing of the
// adapter reaches them — but their real tokens still sit n positions later. Under
// relative positions (RoPE) that leaves them as the bare backbone computes them, up to
// rounding; under BERT's absolute positions it does not.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "graft/error.h"
#include "graft/ops.h"
#include "graft/plugin.h"
#include "graft/text.h"

namespace {

using graft::json_string;
using graft::thousands;
using namespace graft;

constexpr const char* kSchema = R"json({
  "type": "object",
  "properties": {
    "num_virtual_tokens": {"type": "integer", "default": 20, "minimum": 1,
      "description": "number of virtual tokens n prepended to every input"},
    "prompt_tuning_init": {"type": "string", "default": "RANDOM", "enum": ["RANDOM", "TEXT", "random", "text"],
      "description": "RANDOM: N(0, 1) as PEFT's torch.nn.Embedding; TEXT: the word embeddings of prompt_tuning_init_text"},
    "prompt_tuning_init_text": {"type": ["string", "null"], "default": null,
      "description": "TEXT init: tokenised by the backbone's tokenizer, repeated or cut to n tokens"},
    "tokenizer_name_or_path": {"type": ["string", "null"], "default": null,
      "description": "PEFT's tokenizer for TEXT init; ignored: graft uses the backbone's own"},
    "tokenizer_kwargs": {"type": ["null"], "default": null, "description": "PEFT: ignored (only null is accepted)"},
    "inference_mode": {"type": "boolean", "default": false,
      "description": "PEFT's meaning: the prompt is about to be loaded, so skip its initialisation (PEFT saves true)"},
    "token_dim": {"type": ["integer", "null"], "default": null, "minimum": 1,
      "description": "PEFT: the backbone's hidden size; must match"},
    "num_layers": {"type": ["integer", "null"], "default": null, "minimum": 1,
      "description": "PEFT: the backbone's layer count; must match"},
    "num_attention_heads": {"type": ["integer", "null"], "default": null, "minimum": 1,
      "description": "PEFT: the backbone's attention head count; must match"},
    "num_transformer_submodules": {"type": ["integer", "null"], "default": null, "minimum": 1,
      "description": "PEFT: 1 (decoder or encoder); 2 is for encoder-decoder models, which graft has none of"}
  }
})json";

std::string json_or_null(const Config& c, const char* key) { return c.has(key) ? json_string(c.string(key)) : "null"; }

void expect_match(const Config& c, const char* key, std::int64_t actual, const std::string& what) {
  if (c.has(key) && c.integer(key) != actual)
    throw ConfigError("prompt_tuning", fmt::format("{}: {} = {} does not match the backbone's {} ({})", c.origin(), key,
                                                   c.integer(key), what, actual),
                      "the adapter was made for another backbone");
}

// PEFT's TEXT init: the init text's ids (special tokens included), cut to n or repeated
// whole until there are n, then their rows of the frozen word-embedding table.
Tensor text_init(const Backbone& backbone, const Site& site, std::vector<std::int64_t> ids, std::int64_t n) {
  if (ids.empty()) throw ConfigError("prompt_tuning", "prompt_tuning_init_text tokenises to no tokens");
  const std::size_t count = ids.size();
  while (static_cast<std::int64_t>(ids.size()) < n) ids.insert(ids.end(), ids.begin(), ids.begin() + count);
  ids.resize(static_cast<std::size_t>(n));
  const std::string table_name = site.checkpoint_module + ".weight";
  for (const auto& p : backbone.parameters())
    if (p.name == table_name) {
      Tensor rows = ops::to_dtype(ops::embedding(p.tensor, Tensor::from_ints(ids, {n})), DType::f32);
      Tensor out = nn::zeros_parameter(rows.shape());
      std::memcpy(out.raw(), rows.raw(), out.nbytes());
      return out;
    }
  throw ConfigError("prompt_tuning", fmt::format("the backbone has no word-embedding table '{}' for TEXT init", table_name));
}

class PromptHook : public AdapterHook {
 public:
  explicit PromptHook(std::shared_ptr<const Tensor> prompt) : prompt_(std::move(prompt)) {}

  void input_embeddings(const Site& site, Tensor& x, Tensor& key_mask, const Rows& rows) override {
    const Tensor& p = *prompt_;
    const std::int64_t B = x.dim(0), T = x.dim(1), n = p.dim(0);
    Tensor one = ops::reshape(p, {1, n, p.dim(1)});
    Tensor virtual_tokens = B == 1 ? one : ops::concat(std::vector<Tensor>(static_cast<std::size_t>(B), one), 0);
    x = ops::concat({rows.gate(virtual_tokens), x}, 1);

    // Key mask [B, n + T]: the virtual tokens are keys only in the rows the adapter owns.
    const std::vector<float> owned = rows.all() ? std::vector<float>(B, 1.f) : rows.mask.to_floats();
    const std::vector<float> given = key_mask.to_floats();
    std::vector<float> mask(static_cast<std::size_t>(B * (n + T)));
    for (std::int64_t b = 0; b < B; ++b) {
      std::fill_n(mask.begin() + b * (n + T), n, owned[b] != 0.f ? 1.f : 0.f);
      std::copy_n(given.begin() + b * T, T, mask.begin() + b * (n + T) + n);
    }
    if (is_floating(key_mask.dtype())) {
      key_mask = Tensor::from_floats(mask, {B, n + T}, key_mask.dtype());
    } else {
      key_mask = Tensor::from_ints(std::vector<std::int64_t>(mask.begin(), mask.end()), {B, n + T}, key_mask.dtype());
    }
  }

 private:
  std::shared_ptr<const Tensor> prompt_;
};

class PromptTuning : public PeftMethod {
 public:
  explicit PromptTuning(const Config& c) : config_(c) {
    std::string init = c.string("prompt_tuning_init");
    std::transform(init.begin(), init.end(), init.begin(), [](unsigned char ch) { return std::toupper(ch); });
    init_ = init;
    if (init_ == "TEXT" && !c.has("prompt_tuning_init_text"))
      throw ConfigError("prompt_tuning", fmt::format("{}: prompt_tuning_init TEXT needs prompt_tuning_init_text", c.origin()));
  }

  void attach(AttachContext& context) override {
    const Backbone& backbone = context.backbone();
    const BackboneInfo& info = backbone.info();
    const auto sites = context.select(SiteKind::input_embeddings, {});
    if (sites.size() != 1)
      throw ConfigError("prompt_tuning", fmt::format("expected one input_embeddings site, the backbone has {}", sites.size()));
    const Site& site = *sites.front();
    hidden_ = site.out_features;
    layers_ = info.num_layers;
    heads_ = info.num_heads;
    expect_match(config_, "token_dim", hidden_, "hidden size");
    expect_match(config_, "num_layers", layers_, "layer count");
    expect_match(config_, "num_attention_heads", heads_, "attention head count");
    expect_match(config_, "num_transformer_submodules", 1, "transformer stack count");
    const std::int64_t n = config_.integer("num_virtual_tokens");
    if (n >= info.max_positions)  // virtual tokens take positions; a real token needs one too
      throw ConfigError("prompt_tuning",
                        fmt::format("num_virtual_tokens {} leaves no position for the input: the backbone places {} tokens", n,
                                    info.max_positions),
                        "use 8 to 100 virtual tokens");
    source_ = info.source;

    Tensor prompt;
    if (config_.boolean("inference_mode")) {
      // As PEFT: a prompt that load_state() will overwrite needs no TEXT init (nor a
      // tokenizer); adapter folders saved by PEFT say inference_mode true.
      prompt = nn::zeros_parameter({n, hidden_});
    } else if (init_ == "TEXT") {
      prompt = text_init(backbone, site, context.tokenize(config_.string("prompt_tuning_init_text")), n);
    } else {
      prompt = nn::parameter({n, hidden_}, 1.f, context.seed());  // torch.nn.Embedding's N(0, 1)
    }
    prompt_ = std::make_shared<Tensor>(prompt);
    context.register_hook(site, std::make_shared<PromptHook>(prompt_));
  }

  std::vector<nn::NamedParameter> parameters() const override { return {{"prompt_embeddings", *prompt_}}; }

  std::string describe() const override {
    return fmt::format("prompt tuning n={} virtual tokens × {} ({} init), {} params", prompt_->dim(0), hidden_, init_,
                       prompt_->numel());
  }

  std::string adapter_config_json() const override {
    return fmt::format(
        R"({{"peft_type": "PROMPT_TUNING", "task_type": null, "num_virtual_tokens": {}, "token_dim": {}, "num_layers": {},)"
        R"( "num_attention_heads": {}, "num_transformer_submodules": 1, "prompt_tuning_init": "{}",)"
        R"( "prompt_tuning_init_text": {}, "tokenizer_name_or_path": {}, "tokenizer_kwargs": null, "inference_mode": true,)"
        R"( "base_model_name_or_path": {}, "revision": null, "auto_mapping": null}})",
        prompt_->dim(0), hidden_, layers_, heads_, init_, json_or_null(config_, "prompt_tuning_init_text"),
        json_or_null(config_, "tokenizer_name_or_path"), json_string(source_));
  }

 private:
  Config config_;
  std::string init_, source_;
  std::int64_t hidden_ = 0, layers_ = 0, heads_ = 0;
  std::shared_ptr<Tensor> prompt_;
};

PeftMethod* create(const Config& c) { return new PromptTuning(c); }

}  // namespace

GRAFT_PLUGIN("prompt_tuning", "1.0.0",
             "Prompt tuning (Lester et al. 2021): trained virtual-token embeddings prepended to the input; "
             "Hugging Face PEFT's PROMPT_TUNING format",
             kSchema, create, .peft_types = "PROMPT_TUNING", .default_lr = 3e-2)
