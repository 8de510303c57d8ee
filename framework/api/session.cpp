// graft::Session: the one place a run is assembled from a backbone, its tokenizer, the
// plugins, the adapter set and the task heads. Inference binds the call's Selection
// into a fresh ActiveAdapters view; nothing per call is stored on the session.
#include "graft/session.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <nlohmann/json.hpp>

#include "api/method_choice.h"
#include "api/sentence_config.h"
#include "graft/autograd.h"
#include "graft/error.h"
#include "graft/ops.h"
#include "model/backbone_registry.h"
#include "model/generation.h"
#include "peft/adapter_set.h"
#include "plugin/loader.h"
#include "plugin/plugin_call.h"
#include "text/llama2c_tokenizer.h"
#include "train/adapter_io.h"
#include "train/adapter_merge.h"
#include "train/evaluator.h"
#include "train/merged_export.h"
#include "train/pooling.h"
#include "train/task_head.h"
#include "train/task_model.h"
#include "train/trainer.h"

namespace graft {
namespace fs = std::filesystem;

namespace {

// One adapter of the session: its method (a plugin's or a built-in one, attached to the
// adapter set alike) and, once made, trained or loaded, its task head.
struct Entry {
  std::string method, config_json;
  std::uint64_t seed = 42;
  std::unique_ptr<TaskHead> head;
  fs::path source;  // the folder it was loaded from, if it was
  // How errors name it: its folder when loaded (what the user typed), else its name.
  std::string shown(const std::string& name) const { return source.empty() ? name : source.string(); }
};

std::size_t capped(std::size_t length, const Backbone& backbone) {
  return static_cast<std::size_t>(std::min<std::int64_t>(static_cast<std::int64_t>(length), backbone.info().max_positions));
}

nn::ScheduleConfig::Decay parse_decay(const std::string& name) {
  if (name == "linear") return nn::ScheduleConfig::Decay::linear;
  if (name == "cosine") return nn::ScheduleConfig::Decay::cosine;
  if (name == "constant") return nn::ScheduleConfig::Decay::constant;
  throw ConfigError("train", fmt::format("unknown schedule '{}'", name), "use linear, cosine or constant");
}

// The adapter's head must be the one the task needs: a classification head evaluated on
// a regression task would otherwise fail deep inside the loss.
void check_head_fits(const HeadConfig& h, const data::Dataset& dev, const std::string& adapter) {
  const std::int64_t labels = static_cast<std::int64_t>(dev.label_names.size());
  const bool counts_labels = dev.kind == TaskKind::classification || dev.kind == TaskKind::token_classification;
  if (h.kind != dev.kind)
    throw ConfigError("eval",
                      fmt::format("'{}' holds a {} head{}, but task '{}' is {}", adapter, task_kind_name(h.kind),
                                  h.kind == TaskKind::classification || h.kind == TaskKind::token_classification
                                      ? fmt::format(" ({} labels)", h.num_labels)
                                      : "",
                                  dev.task, task_kind_name(dev.kind)),
                      "evaluate an adapter on the kind of task it was trained for (its graft_adapter.json names the head)");
  if (counts_labels && h.num_labels != labels)
    throw ConfigError("eval",
                      fmt::format("'{}' holds a head with {} labels, but task '{}' has {} ({})", adapter, h.num_labels,
                                  dev.task, labels, fmt::join(dev.label_names, ", ")),
                      "evaluate an adapter on a task with the labels it was trained for");
}

// The batch a selection runs on: the texts once per parallel branch, branch-major.
std::vector<std::string> copies(const std::vector<std::string>& texts, const Selection& selection) {
  const std::size_t n = selection.has_parallel() ? selection.branches().size() : 1;
  std::vector<std::string> out;
  out.reserve(texts.size() * n);
  for (std::size_t i = 0; i < n; ++i) out.insert(out.end(), texts.begin(), texts.end());
  return out;
}

}  // namespace

struct Session::Impl {
  // Inference calls share it; calls that change adapters or heads (add, load, unload,
  // add_head, train) hold it alone, so a request never sees an adapter half-added or
  // freed under it: unloading waits for the calls using the set to finish.
  mutable std::shared_mutex mutex;
  model::LoadedBackbone loaded;
  std::vector<fs::path> plugin_dirs;
  std::optional<plugin::PluginRegistry> scanned;
  std::unique_ptr<std::once_flag> scan_once = std::make_unique<std::once_flag>();
  std::unique_ptr<AdapterSet> set;
  std::map<std::string, Entry> entries;
  std::vector<std::string> warnings;

  const Backbone& backbone() const { return *loaded.model; }
  // Plugins are scanned when an adapter first needs one: a session that only embeds or
  // generates with the bare backbone loads no plugin code.
  // (Once, even when the first calls are concurrent inference calls asking for metadata.)
  const plugin::PluginRegistry& plugins() {
    std::call_once(*scan_once, [&] {
      scanned.emplace();
      scanned->scan(plugin::search_path(plugin_dirs));
      for (const auto& conflict : scanned->conflicts()) warnings.push_back(conflict.message);
    });
    return *scanned;
  }
  const text::Tokenizer& tokenizer(const char* what) const {
    if (!loaded.tokenizer)
      throw ConfigError(what, fmt::format("the backbone '{}' has no tokenizer graft can read", backbone().info().source),
                        "load a folder with tokenizer.json or vocab.txt, or a llama2.c model with its tokN.bin beside it");
    return *loaded.tokenizer;
  }

  const Entry& entry(const std::string& name) const {
    auto it = entries.find(name);
    if (it == entries.end()) {
      std::vector<std::string> names;
      for (const auto& [n, e] : entries) names.push_back(n);
      throw ConfigError("session", fmt::format("no adapter named '{}'", name),
                        names.empty() ? "add or load one first" : fmt::format("adapters: {}", fmt::join(names, ", ")));
    }
    return it->second;
  }

  // The selection's hooks, its names checked against the session's adapters. With a
  // parallel block the batch is `rows` inputs once per branch.
  ActiveAdapters bind(const Selection& selection, std::size_t rows) const {
    for (const auto& n : selection.names())
      if (!n.empty() || selection.kind() != Selection::Kind::per_row) entry(n);
    if (selection.kind() == Selection::Kind::per_row && selection.names().size() != rows)
      throw ConfigError("session", fmt::format("a per-row selection names {} adapters for {} rows", selection.names().size(), rows),
                        "give one adapter name (or \"\" for none) per input row");
    return set->bind(selection, static_cast<std::int64_t>(rows));
  }

  // The fusion adapter over exactly `fused`, in order; "" when none is attached.
  std::string fusion_over(const std::vector<std::string>& fused) const {
    for (const auto& [name, e] : entries)
      if (e.method == "fusion" && nlohmann::json::parse(e.config_json).value("adapters", std::vector<std::string>{}) == fused)
        return name;
    return "";
  }
  // Every adapter a selection runs, in application order, each fuse block's fusion
  // right after the adapters it fuses: the last of them with a head is the selection's.
  std::vector<std::string> ordered(const Selection& selection) const {
    if (selection.kind() == Selection::Kind::fuse) {
      std::vector<std::string> out = selection.names();
      if (const std::string f = fusion_over(out); !f.empty()) out.push_back(f);
      return out;
    }
    if (selection.blocks().empty()) return selection.names();
    std::vector<std::string> out;
    for (const Selection& b : selection.blocks())
      for (auto& n : ordered(b)) out.push_back(std::move(n));
    return out;
  }

  // The head of each row: with a stack, the last adapter that has one; per row, the row's.
  std::vector<const TaskHead*> heads_for(const Selection& selection, std::size_t rows, const char* what) const {
    if (selection.kind() == Selection::Kind::per_row) {
      std::vector<const TaskHead*> out;
      for (const auto& n : selection.names()) {
        if (n.empty() || !entry(n).head)
          throw ConfigError(what, fmt::format("row {} has {}", out.size(), n.empty() ? "no adapter" : "an adapter without a task head: '" + n + "'"),
                            "every row needs an adapter trained with a head (graft train saves one)");
        out.push_back(entry(n).head.get());
      }
      return out;
    }
    const TaskHead* head = nullptr;
    for (const auto& n : ordered(selection))
      if (entry(n).head) head = entry(n).head.get();
    if (!head)
      throw ConfigError(what, selection.empty() ? "no adapter selected, and the bare backbone has no task head"
                                                : "none of the selected adapters has a task head",
                        "select an adapter trained with a head (graft train saves one)");
    return std::vector<const TaskHead*>(rows, head);
  }

  void save(const std::string& name, const fs::path& folder) const {
    graft::save_adapter(folder, *set, name, backbone(), entry(name).head.get());
  }

  HeadConfig ensure_head(const std::string& name, const data::Dataset& data, std::optional<Pooling> pooling) {
    entry(name);
    Entry& e = entries.at(name);
    if (!e.head) {
      HeadConfig h;
      h.kind = data.kind;
      h.num_labels = data.kind == TaskKind::regression ? 1 : static_cast<std::int64_t>(data.label_names.size());
      h.pooling = pooling.value_or(backbone().info().causal ? Pooling::last : Pooling::mean);
      e.head = std::make_unique<TaskHead>(h, backbone(), e.seed);
    }
    return e.head->config();
  }

  std::vector<Prediction> predict(const std::vector<TextInput>& rows, const Selection& selection, const EvalOptions& options) const;

  // A fusion's config with "sites" filled in where the adapters it fuses act, unless given.
  std::string place_fusion(const std::string& config_json) const {
    nlohmann::json c = nlohmann::json::parse(config_json);
    if (c.contains("sites") && !c["sites"].empty()) return config_json;
    std::vector<std::string> sites;
    for (const Site& site : backbone().sites())
      for (const auto& member : c.value("adapters", std::vector<std::string>{})) {
        entry(member);  // a clear error for an unknown name
        const auto where = set->hook_sites(member, SiteKind::sublayer_output);
        if (std::find(where.begin(), where.end(), &site) != where.end()) {
          sites.push_back(site.name);
          break;
        }
      }
    // None: the adapters are not bottleneck adapters, which binding names.
    if (sites.empty()) set->bind(Selection::fuse(c.value("adapters", std::vector<std::string>{})));
    c["sites"] = sites;
    return c.dump();
  }

  Batch encode(const std::vector<std::string>& texts, std::size_t max_length) const {
    const auto& tok = tokenizer("session");
    std::vector<text::Encoding> encodings;
    for (const auto& t : texts) encodings.push_back(tok.encode(t, {}, false, max_length));
    return text::make_batch(encodings, tok.pad_id());
  }
};

Session::Session(const fs::path& backbone, SessionOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->loaded = model::load_backbone(backbone, options.dtype);
  impl_->set = std::make_unique<AdapterSet>(*impl_->loaded.model);
  if (const text::Tokenizer* tok = impl_->loaded.tokenizer.get())
    impl_->set->set_tokenizer([tok](const std::string& text) { return tok->encode(text).ids; });
  impl_->plugin_dirs = options.plugin_dirs;
}

Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

const BackboneInfo& Session::backbone_info() const { return impl_->backbone().info(); }
const std::vector<Site>& Session::sites() const { return impl_->backbone().sites(); }
bool Session::has_tokenizer() const { return impl_->loaded.tokenizer != nullptr; }
std::string Session::tokenizer_summary() const {
  const auto& t = impl_->loaded.tokenizer;
  return t ? fmt::format("{}, {} tokens", t->kind(), t->vocab_size()) : "";
}
const std::vector<std::string>& Session::warnings() const { return impl_->warnings; }

void Session::add_adapter(const std::string& name, const std::string& method, const std::string& config_json, std::uint64_t seed,
                          const std::string& origin) {
  std::unique_lock lock(impl_->mutex);
  Impl& s = *impl_;
  if (name.empty()) throw ConfigError("session", "an adapter needs a name");
  if (s.entries.count(name)) throw ConfigError("session", fmt::format("an adapter named '{}' already exists", name), "unload it first");
  const api::MethodChoice choice = api::resolve_method(s.plugins(), method, config_json, origin);
  // Full fine-tuning trains the weights every other adapter is built on.
  const bool has_full = std::any_of(s.entries.begin(), s.entries.end(), [](const auto& e) { return e.second.method == kFullFineTuning; });
  if ((choice.plugin == kFullFineTuning && !s.entries.empty()) || has_full)
    throw ConfigError("session", "full fine-tuning changes the backbone every adapter shares: it is alone on its session",
                      "use a session of its own for the full baseline");
  std::string config = choice.config_json;
  if (choice.plugin == "fusion") config = s.place_fusion(config);
  attach_method(*s.set, s.plugins(), name, choice.plugin, config, choice.origin, seed);
  if (choice.plugin == "fusion") {
    try {  // the fused adapters must be bottleneck adapters: refused now, not at the first call
      s.set->bind(Selection::fuse(nlohmann::json::parse(config)["adapters"].get<std::vector<std::string>>()));
    } catch (...) {
      s.set->remove(name);
      throw;
    }
  }
  s.entries[name] = Entry{choice.plugin, config, seed, nullptr, {}};
}

void Session::load_adapter(const std::string& name, const fs::path& folder) {
  std::unique_lock lock(impl_->mutex);
  Impl& s = *impl_;
  if (s.entries.count(name)) throw ConfigError("session", fmt::format("an adapter named '{}' already exists", name), "unload it first");
  Entry e;
  const SavedAdapter saved = graft::load_adapter(folder, *s.set, name, s.plugins(), s.backbone(), &e.head);
  e.method = saved.method;
  e.config_json = saved.config_json;
  e.source = folder;
  s.entries[name] = std::move(e);
}

void Session::merge_adapters(const std::string& name, const std::vector<std::pair<std::string, double>>& adapters,
                             const MergeOptions& options) {
  std::unique_lock lock(impl_->mutex);
  Impl& s = *impl_;
  if (name.empty()) throw ConfigError("merge", "the merged adapter needs a name");
  if (s.entries.count(name)) throw ConfigError("merge", fmt::format("an adapter named '{}' already exists", name), "unload it first");
  std::vector<MergeSource> sources;
  std::vector<std::string> names;
  for (const auto& [name_of_input, weight] : adapters) {
    const std::string& input = name_of_input;  // a plain reference: clang 14 cannot capture a binding
    const Entry& e = s.entry(input);
    if (e.method == kHeadOnly || e.method == kFullFineTuning)
      throw ConfigError("merge", fmt::format("'{}' is the built-in '{}' baseline: it has no adapter tensors to merge", input, e.method),
                        "merge LoRA, DoRA or bottleneck adapters");
    MergeSource source{input, e.method, e.config_json, {}, weight};
    for (auto& [key, t] : plugin::call_plugin(e.method, "its state()", [&] { return s.set->method(input).state(); }))
      source.tensors.emplace(key, t);
    sources.push_back(std::move(source));
    names.push_back(input);
  }
  const TaskHead* head = nullptr;
  if (!options.head.empty()) {
    if (std::find(names.begin(), names.end(), options.head) == names.end())
      throw ConfigError("merge", fmt::format("the head to keep, '{}', is not one of the merged adapters", options.head),
                        fmt::format("name one of: {}", fmt::join(names, ", ")));
    head = s.entry(options.head).head.get();
    if (!head)
      throw ConfigError("merge", fmt::format("'{}' has no task head to keep", options.head),
                        "keep the head of an adapter trained with one, or merge without a head");
  }
  MergeResult merged = merge_adapter_tensors(sources, options);
  const std::uint64_t seed = s.entry(names.front()).seed;
  attach_method(*s.set, s.plugins(), name, merged.method, merged.config_json,
                fmt::format("the merge of {}", fmt::join(names, ", ")), seed);
  Entry e{merged.method, s.set->method_config_json(name), seed, nullptr, {}};
  try {
    PeftMethod& method = s.set->method(name);
    if (merged.fresh_magnitudes)
      for (auto& [key, t] : plugin::call_plugin(merged.method, "its state()", [&] { return method.state(); }))
        merged.tensors.emplace(key, t);  // DoRA: the fresh magnitudes, as PEFT's (‖W‖)
    plugin::call_plugin(merged.method, "its load_state() of the merged tensors", [&] { method.load_state(merged.tensors); });
    if (head) {
      e.head = std::make_unique<TaskHead>(head->config(), s.backbone(), seed);
      const auto from = head->parameters(), to = e.head->parameters();
      for (std::size_t i = 0; i < to.size(); ++i) std::memcpy(to[i].tensor.raw(), from[i].tensor.raw(), to[i].tensor.nbytes());
    }
  } catch (...) {
    s.set->remove(name);
    throw;
  }
  s.entries[name] = std::move(e);
}

void Session::save_adapter(const std::string& name, const fs::path& folder) const {
  std::shared_lock lock(impl_->mutex);
  impl_->save(name, folder);
}

void Session::unload_adapter(const std::string& name) {
  std::unique_lock lock(impl_->mutex);
  impl_->entry(name);
  impl_->set->remove(name);
  impl_->entries.erase(name);
}

ExportSummary Session::export_merged(const std::string& name, const fs::path& folder) {
  std::unique_lock lock(impl_->mutex);  // merging writes the shared weights
  Impl& s = *impl_;
  const Entry& e = s.entry(name);
  const MergedExport written = graft::export_merged(folder, *s.set, name, s.backbone());
  ExportSummary out{written.folder, e.method, written.weights_dtype, written.changed, written.tensors, written.files, {}};
  if (e.head)
    out.notes.push_back(fmt::format(
        "the adapter's task head ({}, {} outputs) is not written: a backbone checkpoint has no head; predict with the "
        "adapter folder, or load its head.safetensors yourself",
        task_kind_name(e.head->config().kind), e.head->config().num_labels));
  return out;
}

HeadConfig Session::add_head(const std::string& name, const data::Dataset& data, std::optional<Pooling> pooling) {
  std::unique_lock lock(impl_->mutex);
  return impl_->ensure_head(name, data, pooling);
}

std::vector<std::string> Session::adapter_names() const {
  std::shared_lock lock(impl_->mutex);
  std::vector<std::string> out;
  for (const auto& [name, e] : impl_->entries) out.push_back(name);
  return out;
}

AdapterInfo Session::adapter(const std::string& name) const {
  std::shared_lock lock(impl_->mutex);
  const Impl& s = *impl_;
  const Entry& e = s.entry(name);
  AdapterInfo info{name, e.method, e.config_json, "", 0, std::nullopt, 0, e.source, 0};
  info.default_lr = api::default_lr(impl_->plugins(), e.method);
  info.description = s.set->describe(name);
  for (const auto& p : s.set->parameters(Selection::one(name))) info.trainable_parameters += p.tensor.numel();
  if (e.head) {
    info.head = e.head->config();
    for (const auto& p : e.head->parameters()) info.head_parameters += p.tensor.numel();
  }
  return info;
}

Tensor Session::forward(const std::vector<std::string>& texts, const Selection& selection) const {
  std::shared_lock lock(impl_->mutex);
  NoGradGuard no_grad;
  const Batch batch = impl_->encode(copies(texts, selection), static_cast<std::size_t>(backbone_info().max_positions));
  ActiveAdapters hooks = impl_->bind(selection, texts.size());
  return impl_->backbone().forward(batch, &hooks);
}

std::vector<Prediction> Session::predict(const std::vector<TextInput>& rows, const Selection& selection,
                                         const EvalOptions& options) const {
  std::shared_lock lock(impl_->mutex);
  // Parallel: each branch through its own head, branch after branch.
  std::vector<Prediction> out;
  for (const Selection& branch : selection.branches()) {
    auto part = impl_->predict(rows, branch, options);
    out.insert(out.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  return out;
}

std::vector<Prediction> Session::Impl::predict(const std::vector<TextInput>& rows, const Selection& selection,
                                               const EvalOptions& options) const {
  const Impl& s = *this;
  const auto heads = s.heads_for(selection, rows.size(), "predict");
  data::Dataset ds;
  ds.kind = TaskKind::classification;
  for (const auto& r : rows) {
    data::Example ex;
    ex.text = r.text;
    ex.has_pair = r.pair.has_value();
    ex.text_pair = r.pair.value_or("");
    ds.examples.push_back(std::move(ex));
  }
  for (const TaskHead* h : heads)
    if (h->config().kind != TaskKind::classification && h->config().kind != TaskKind::regression)
      throw ConfigError("predict", fmt::format("predict handles classification and regression heads, not {}", task_kind_name(h->config().kind)));
  const auto batches = data::make_batches(ds, s.tokenizer("predict"), options.batch_size, capped(options.max_length, s.backbone()), false, 0);
  std::vector<Prediction> out;
  NoGradGuard no_grad;
  for (const auto& b : batches) {
    const std::size_t first = out.size(), n = static_cast<std::size_t>(b.batch.input_ids.dim(0));
    Selection part = selection;
    if (selection.kind() == Selection::Kind::per_row)
      part = Selection::per_row({selection.names().begin() + first, selection.names().begin() + first + n});
    ActiveAdapters hooks = s.bind(part, n);
    Tensor key_mask;
    const Tensor hidden = s.backbone().forward(b.batch, &hooks, &key_mask);
    // Each head runs once per batch, on its own rows only.
    std::map<const TaskHead*, std::vector<std::int64_t>> rows_of;
    for (std::size_t r = 0; r < n; ++r) rows_of[heads[first + r]].push_back(static_cast<std::int64_t>(r));
    out.resize(first + n);
    for (const auto& [head, rows] : rows_of) {
      const bool whole = rows.size() == n;
      const Tensor logits = head->forward(whole ? hidden : ops::gather_rows(hidden, rows),
                                          whole ? key_mask : ops::gather_rows(key_mask, rows), b.batch.input_ids.dim(1), false);
      const std::vector<double> values = train::predictions(*head, logits);
      const bool regression = head->config().kind == TaskKind::regression;
      const std::vector<float> probabilities = regression ? std::vector<float>{} : ops::softmax(logits).to_floats();
      const auto classes = static_cast<std::size_t>(logits.dim(-1));
      for (std::size_t i = 0; i < rows.size(); ++i) {
        Prediction& p = out[first + static_cast<std::size_t>(rows[i])];
        p.value = values[i];
        p.label = regression ? -1 : static_cast<std::int64_t>(values[i]);
        if (!regression) p.probabilities.assign(probabilities.begin() + i * classes, probabilities.begin() + (i + 1) * classes);
      }
    }
  }
  return out;
}

std::vector<std::vector<float>> Session::embed(const std::vector<std::string>& texts, const Selection& selection,
                                               const EmbedOptions& options) const {
  std::shared_lock lock(impl_->mutex);
  const Impl& s = *impl_;
  if (texts.empty()) return {};
  const fs::path folder = backbone_info().source;
  const Pooling pooling = options.pooling.value_or(api::folder_pooling(folder));
  const std::size_t max_length = options.max_length ? capped(*options.max_length, s.backbone())
                                                    : api::folder_max_length(folder, backbone_info().max_positions);
  NoGradGuard no_grad;
  const Batch batch = s.encode(copies(texts, selection), max_length);
  ActiveAdapters hooks = s.bind(selection, texts.size());
  Tensor key_mask;
  const Tensor hidden = s.backbone().forward(batch, &hooks, &key_mask);
  // Virtual tokens a hook prepended are not the sentence's: pool the real ones.
  const std::int64_t T = batch.input_ids.dim(1), extra = hidden.dim(1) - T;
  Tensor pooled = train::pool(extra ? ops::slice(hidden, 1, extra, T) : hidden, batch.attention_mask, pooling);
  if (options.normalize) pooled = train::l2_normalize(pooled);
  const auto values = pooled.to_floats();
  const auto H = static_cast<std::size_t>(pooled.dim(1));
  std::vector<std::vector<float>> out;
  for (std::size_t i = 0, n = values.size() / H; i < n; ++i) out.emplace_back(values.begin() + i * H, values.begin() + (i + 1) * H);
  return out;
}

std::string Session::generate(const std::string& prompt, const Selection& selection, const GenerateOptions& options,
                              const std::function<void(const std::string&)>& on_text) const {
  std::shared_lock lock(impl_->mutex);
  const Impl& s = *impl_;
  if (!backbone_info().causal)
    throw ConfigError("generate", fmt::format("a {} backbone cannot generate text", backbone_info().architecture),
                      "use a decoder (llama2.c or LLaMA) backbone");
  const text::Tokenizer& tok = s.tokenizer("generate");
  if (selection.kind() == Selection::Kind::per_row && selection.names().size() != 1)
    throw ConfigError("generate", "generate continues one prompt: a per-row selection must name one adapter");
  if (selection.has_parallel())
    throw ConfigError("generate", fmt::format("generate continues one prompt with one model, not the branches of {}", selection.to_string()),
                      "generate with each branch in turn");
  model::GenerationConfig config;
  config.max_new_tokens = options.max_new_tokens;
  config.temperature = options.temperature;
  config.top_p = options.top_p;
  config.seed = options.seed;
  ActiveAdapters hooks = s.bind(selection, 1);
  std::string text;
  auto emit = [&](const std::string& piece) {
    text += piece;
    if (on_text) on_text(piece);
  };
  if (const auto* llama2c = dynamic_cast<const text::Llama2cTokenizer*>(&tok)) {
    // llama2.c pieces decode one at a time (a leading space depends on the previous id).
    const std::vector<std::int64_t> ids = llama2c->encode_ids(prompt, true, false);
    std::int64_t previous = ids.back();
    model::generate(s.backbone(), ids, config, &hooks, [&](std::int64_t id) {
      emit(llama2c->decode(previous, id));
      previous = id;
    });
  } else {
    // Other tokenizers decode whole sequences: emit what each new id adds to the text,
    // holding back an incomplete UTF-8 character (U+FFFD at the end).
    std::vector<std::int64_t> ids = tok.encode(prompt, {}, false, backbone_info().max_positions).ids;
    std::string shown = tok.decode(ids);
    model::generate(s.backbone(), ids, config, &hooks, [&](std::int64_t id) {
      ids.push_back(id);
      const std::string all = tok.decode(ids);
      const bool incomplete = all.size() >= 3 && all.compare(all.size() - 3, 3, "\xEF\xBF\xBD") == 0;
      if (incomplete || all.compare(0, shown.size(), shown) != 0) return;
      emit(all.substr(shown.size()));
      shown = all;
    });
  }
  return text;
}

Scores Session::evaluate(const data::Dataset& dev, const Selection& selection, const EvalOptions& options) const {
  std::shared_lock lock(impl_->mutex);
  const Impl& s = *impl_;
  if (selection.kind() == Selection::Kind::per_row)
    throw ConfigError("eval", "evaluate scores one model on a dataset: select one adapter or a stack, not one per row");
  if (selection.has_parallel())
    throw ConfigError("eval", fmt::format("evaluate scores one model on a dataset, not the branches of {}", selection.to_string()),
                      "evaluate each branch in turn");
  const TaskHead* head = s.heads_for(selection, 1, "eval").front();
  for (const auto& n : s.ordered(selection))
    if (s.entry(n).head.get() == head) check_head_fits(head->config(), dev, s.entry(n).shown(n));
  const auto batches = data::make_batches(dev, s.tokenizer("eval"), options.batch_size, capped(options.max_length, s.backbone()), false, 0);
  ActiveAdapters hooks = s.bind(selection, 0);
  return train::evaluate(s.backbone(), &hooks, *head, batches, dev.metric, dev.label_names);
}

std::size_t Session::count_tokens(const TextInput& row) const {
  const auto& tok = impl_->tokenizer("count_tokens");
  const std::size_t untruncated = std::numeric_limits<std::size_t>::max() / 2;
  return tok.encode(row.text, row.pair.value_or(""), row.pair.has_value(), untruncated).ids.size();
}

TrainSummary Session::train(const std::string& name, const data::Dataset& train_data, const data::Dataset& dev_data,
                            const TrainOptions& options) {
  std::unique_lock lock(impl_->mutex);
  Impl& s = *impl_;
  s.entry(name);  // a clear error for an unknown name
  Entry& e = s.entries.at(name);
  const Backbone& bb = s.backbone();
  // Through a composition: `name` learns, every other adapter in it stays frozen.
  const Selection through = options.compose.empty() ? Selection::one(name) : options.compose;
  const std::vector<std::string> used = s.ordered(through);
  if (std::find(used.begin(), used.end(), name) == used.end())
    throw ConfigError("train", fmt::format("the composition {} does not run adapter '{}'", through.to_string(), name),
                      "train an adapter the composition names (a fuse block trains its fusion)");
  if (through.has_parallel() || through.kind() == Selection::Kind::per_row)
    throw ConfigError("train", fmt::format("train runs one model: not {}", through.to_string()),
                      "train each branch in turn, or through a stack, average or fuse block");
  ActiveAdapters hooks = s.bind(through, 0);
  std::vector<Tensor> frozen;  // gradients off for the run: no backward work for them
  for (const auto& other : used)
    if (other != name)
      for (auto& p : s.set->parameters(Selection::one(other)))
        if (p.tensor.requires_grad()) {
          p.tensor.set_requires_grad(false);
          frozen.push_back(p.tensor);
        }
  struct Thaw {
    std::vector<Tensor>& tensors;
    ~Thaw() {
      for (Tensor& t : tensors) t.set_requires_grad(true);
    }
  } thaw{frozen};
  s.ensure_head(name, train_data, options.pooling);
  train::TrainTarget target;
  target.backbone = &bb;
  target.head = e.head.get();
  target.hooks = &hooks;
  target.parameters = s.set->parameters(Selection::one(name));
  for (const auto& p : e.head->parameters()) target.parameters.push_back({"head." + p.name, p.tensor});
  target.export_best = [&](const fs::path& dir) { s.save(name, dir); };

  train::TrainConfig config;
  config.epochs = options.epochs;
  config.max_steps = options.max_steps;
  config.batch_size = options.batch_size;
  config.grad_accumulation = options.grad_accumulation;
  config.max_length = capped(options.max_length, bb);
  config.lr = options.lr > 0 ? options.lr : api::default_lr(s.plugins(), e.method);
  config.weight_decay = options.weight_decay;
  config.warmup_ratio = options.warmup_ratio;
  config.decay = parse_decay(options.schedule);
  config.max_grad_norm = options.max_grad_norm;
  config.seed = options.seed;
  config.eval_every = options.eval_every;
  config.patience = options.patience;
  config.save_every = options.save_every;
  config.output = options.output;
  config.progress = options.progress_line;
  config.label = options.label.empty() ? e.method : options.label;
  config.on_progress = options.on_progress;
  config.should_stop = options.should_stop;

  const train::TrainResult r = train::train_model(config, target, train_data, dev_data, s.tokenizer("train"));
  TrainSummary out;
  out.best = r.best;
  out.last = r.last;
  out.evals = r.evals;
  out.best_step = r.best_step;
  out.steps = r.steps;
  out.seconds = r.seconds;
  out.tokens_per_second = r.tokens_per_second;
  out.peak_memory_mib = train::peak_memory_mib();
  out.resumed = r.resumed;
  out.stopped = r.stopped;
  out.early_stopped = r.early_stopped;
  out.already_finished = r.already_finished;
  out.lr = config.lr;
  for (const auto& p : target.parameters) out.trainable_parameters += p.tensor.numel();
  out.best_folder = options.output / "best";
  return out;
}

}  // namespace graft
