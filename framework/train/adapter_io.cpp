#include "train/adapter_io.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <cstring>
#include <nlohmann/json.hpp>

#include "graft/error.h"
#include "graft/ops.h"
#include "io/atomic_file.h"
#include "io/json_config.h"
#include "io/output_folder.h"
#include "io/safetensors.h"
#include "plugin/config_impl.h"
#include "plugin/plugin_call.h"

namespace graft {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kManifest = "graft_adapter.json";

// PEFT bookkeeping keys that carry no meaning for the computation.
const std::vector<std::string> kPeftBookkeeping = {"peft_type", "task_type", "base_model_name_or_path", "revision",
                                                    "inference_mode", "auto_mapping", "peft_version"};

// The plugin that declares it reads `peft_type` (its ABI 2 metadata).
std::string method_for_peft_type(const plugin::PluginRegistry& plugins, const std::string& peft_type, const std::string& origin) {
  if (const plugin::PluginRecord* record = plugins.find_peft_type(peft_type)) return record->name;
  std::vector<std::string> known;
  for (const auto& record : plugins.plugins())
    for (const auto& type : record.peft_types) known.push_back(fmt::format("{} ({})", type, record.name));
  throw ConfigError("adapter", fmt::format("{}: peft_type '{}' has no graft method", origin, peft_type),
                    known.empty() ? "no loaded plugin reads PEFT adapters; add plugin folders with --plugin-dir"
                                  : fmt::format("the loaded plugins read: {}", fmt::join(known, ", ")));
}

json backbone_fingerprint(const Backbone& backbone) {
  const BackboneInfo& i = backbone.info();
  return {{"architecture", i.architecture}, {"num_layers", i.num_layers}, {"hidden_size", i.hidden_size},
          {"num_heads", i.num_heads}, {"vocab_size", i.vocab_size}, {"parameter_count", i.parameter_count}};
}

json head_json(const HeadConfig& h) {
  return {{"task", task_kind_name(h.kind)}, {"num_labels", h.num_labels}, {"pooling", pooling_name(h.pooling)},
          {"dropout", h.dropout}};
}

HeadConfig head_from_json(const json& j, const std::string& origin) {
  HeadConfig h;
  h.kind = parse_task_kind(io::require_key<std::string>(j, "task", origin));
  h.num_labels = io::require_key<std::int64_t>(j, "num_labels", origin);
  h.pooling = parse_pooling(io::optional_key<std::string>(j, "pooling", "mean", origin));
  h.dropout = io::optional_key<float>(j, "dropout", 0.1f, origin);
  return h;
}

std::map<std::string, Tensor> read_tensors(const fs::path& file) {
  const auto st = io::SafetensorsFile::open(file);
  std::map<std::string, Tensor> out;
  for (const auto& info : st.tensors()) {
    Tensor t = st.get(info.name);
    if (const std::int64_t bad = count_non_finite(t); bad > 0)
      throw FormatError("adapter",
                        fmt::format("'{}': tensor '{}' holds {} non-finite values (NaN or inf)", file.string(), info.name, bad),
                        "the adapter was saved from a diverged run or is corrupt: train it again with a lower --lr");
    out.emplace(info.name, std::move(t));
  }
  return out;
}

// Writes a folder through a staged copy: `fill` writes into the staged folder, which
// replaces `folder` only once complete (io::publish_folder), and only when `folder` is
// missing, empty or an adapter folder graft wrote (it holds graft_adapter.json).
void write_folder(const fs::path& folder, const std::function<void(const fs::path&)>& fill) {
  const fs::path parent = folder.parent_path().empty() ? fs::path(".") : folder.parent_path();
  if (!fs::is_directory(parent))
    throw IoError("adapter", fmt::format("cannot save to '{}': its parent folder does not exist", folder.string()),
                  "create the parent folder first, or save elsewhere");
  io::clean_stale_staging(parent, "adapter", {folder.filename().string()});
  io::require_graft_folder(folder, kManifest, "adapter folder", "adapter");
  const fs::path staged = folder.string() + fmt::format(".tmp.{}", ::getpid());
  try {
    fs::remove_all(staged);
    fs::create_directories(staged);
  } catch (const fs::filesystem_error& e) {
    throw IoError("adapter", fmt::format("cannot save to '{}': cannot create '{}': {}", folder.string(), staged.string(),
                                         e.code().message()),
                  "check that the folder is writable and its disk has space");
  }
  try {
    fill(staged);
    io::publish_folder(staged, folder);
  } catch (const fs::filesystem_error& e) {
    std::error_code ec;
    fs::remove_all(staged, ec);
    throw IoError("adapter", fmt::format("cannot save to '{}': {}", folder.string(), e.what()),
                  "check that the folder is writable and its disk has space");
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staged, ec);
    throw;
  }
}

void write_head(const fs::path& staged, const TaskHead& head, json& manifest) {
  manifest["head"] = head_json(head.config());
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& p : head.parameters()) tensors.emplace_back(p.name, p.tensor);
  if (!tensors.empty()) io::save_safetensors(staged / "head.safetensors", tensors);
}

void copy_into(const Tensor& dst, const Tensor& src, const fs::path& file, const std::string& name) {
  if (src.shape() != dst.shape())
    throw FormatError("adapter", fmt::format("'{}': tensor '{}' has shape {}, expected {}", file.string(), name,
                                             shape_str(src.shape()), shape_str(dst.shape())),
                      "the folder was saved for another backbone or task");
  const Tensor converted = src.dtype() == dst.dtype() ? src : ops::to_dtype(src, dst.dtype());
  std::memcpy(dst.raw(), converted.raw(), dst.nbytes());
}

void load_named(const fs::path& file, const std::vector<nn::NamedParameter>& params) {
  const auto tensors = read_tensors(file);
  for (const auto& p : params) {
    auto it = tensors.find(p.name);
    if (it == tensors.end())
      throw FormatError("adapter", fmt::format("'{}' has no tensor '{}'", file.string(), p.name),
                        "the folder was saved for another backbone or task");
    copy_into(p.tensor, it->second, file, p.name);
  }
}

}  // namespace

void save_adapter(const fs::path& folder, const AdapterSet& set, const std::string& name, const Backbone& backbone,
                  const TaskHead* head) {
  PeftMethod& method = set.method(name);
  const std::string& plugin_name = set.method_name(name);
  if (plugin_name == kHeadOnly || plugin_name == kFullFineTuning) {
    // The baselines' folders hold the head (and, for full, every weight) as ever.
    if (!head) throw ConfigError("adapter", fmt::format("'{}' ({}) has nothing to save before it has a task head", name, plugin_name));
    save_baseline(folder, plugin_name, backbone, *head);
    return;
  }
  write_folder(folder, [&](const fs::path& staged) {
    const std::string config =
        plugin::call_plugin(plugin_name, "its adapter_config_json()", [&] { return method.adapter_config_json(); });
    io::write_file_atomic(staged / "adapter_config.json",
                          io::parse_json(config, fmt::format("adapter_config_json() of plugin '{}'", plugin_name)).dump(2) + "\n");
    io::save_safetensors(staged / "adapter_model.safetensors",
                         plugin::call_plugin(plugin_name, "its state()", [&] { return method.state(); }), {{"format", "pt"}});
    json manifest = {{"format", "graft-adapter/1"},
                     {"method", set.method_name(name)},
                     {"config", json::parse(set.method_config_json(name))},
                     {"backbone", backbone_fingerprint(backbone)}};
    if (head) write_head(staged, *head, manifest);
    io::write_file_atomic(staged / kManifest, manifest.dump(2) + "\n");
  });
}

void save_baseline(const fs::path& folder, const std::string& kind, const Backbone& backbone, const TaskHead& head) {
  if (kind != kHeadOnly && kind != kFullFineTuning)
    throw ConfigError("adapter", fmt::format("unknown baseline '{}'", kind), "baselines: head, full");
  write_folder(folder, [&](const fs::path& staged) {
    json manifest = {{"format", "graft-adapter/1"}, {"method", kind}, {"config", json::object()},
                     {"backbone", backbone_fingerprint(backbone)}};
    if (kind == kFullFineTuning) {
      std::vector<std::pair<std::string, Tensor>> weights;
      for (const auto& p : backbone.parameters()) weights.emplace_back(p.name, p.tensor);
      io::save_safetensors(staged / "model.safetensors", weights);
    }
    write_head(staged, head, manifest);
    io::write_file_atomic(staged / kManifest, manifest.dump(2) + "\n");
  });
}


SavedAdapter read_adapter_manifest(const fs::path& folder, const plugin::PluginRegistry& plugins) {
  if (!fs::is_directory(folder))
    throw IoError("adapter", fmt::format("'{}' is not an adapter folder", folder.string()),
                  "an adapter is a folder with adapter_config.json and adapter_model.safetensors");
  SavedAdapter out;
  const fs::path manifest_path = folder / kManifest;
  if (fs::exists(manifest_path)) {
    const json m = io::load_json(manifest_path);
    const std::string origin = manifest_path.string();
    out.method = io::require_key<std::string>(m, "method", origin);
    out.config_json = io::require_key<json>(m, "config", origin).dump();
    if (m.contains("head")) {
      out.has_head = true;
      out.head = head_from_json(m.at("head"), origin);
    }
    return out;
  }
  // Saved by Hugging Face PEFT: the method follows from peft_type, the config is
  // adapter_config.json less PEFT's bookkeeping keys.
  const fs::path config_path = folder / "adapter_config.json";
  const json config = io::load_json(config_path);
  out.method = method_for_peft_type(plugins, io::require_key<std::string>(config, "peft_type", config_path.string()), config_path.string());
  json filtered = json::object();
  const auto schema = parse_schema(plugins.find(out.method).schema_json, out.method);
  for (auto it = config.begin(); it != config.end(); ++it) {
    const bool bookkeeping = std::find(kPeftBookkeeping.begin(), kPeftBookkeeping.end(), it.key()) != kPeftBookkeeping.end();
    if (bookkeeping && !schema.at("properties").contains(it.key())) continue;
    filtered[it.key()] = *it;
  }
  out.config_json = filtered.dump();
  return out;
}

SavedAdapter load_adapter(const fs::path& folder, AdapterSet& set, const std::string& name, const plugin::PluginRegistry& plugins,
                          const Backbone& backbone, std::unique_ptr<TaskHead>* head_out, std::uint64_t seed) {
  SavedAdapter saved = read_adapter_manifest(folder, plugins);
  const fs::path manifest_path = folder / kManifest;
  if (fs::exists(manifest_path)) {
    const json m = io::load_json(manifest_path);
    // Every graft manifest carries the fingerprint: one without it (or with keys cut
    // out) is refused rather than loaded unchecked onto whatever backbone is given.
    const json expected = io::require_key<json>(m, "backbone", manifest_path.string()), actual = backbone_fingerprint(backbone);
    for (auto it = actual.begin(); it != actual.end(); ++it)
      if (!expected.is_object() || !expected.contains(it.key()))
        throw FormatError("adapter",
                          fmt::format("'{}': the backbone fingerprint lacks '{}'", manifest_path.string(), it.key()),
                          "graft writes the whole fingerprint; the manifest was edited or is damaged: save the adapter again");
    for (auto it = expected.begin(); it != expected.end(); ++it)
      if (actual.contains(it.key()) && actual.at(it.key()) != *it)
        throw ConfigError("adapter",
                          fmt::format("'{}' was trained on another backbone: {} {} there, {} here", folder.string(), it.key(),
                                      it->dump(), actual.at(it.key()).dump()),
                          fmt::format("this backbone: {}; load the adapter onto the backbone it was trained on", actual.dump()));
  }
  auto load_head = [&] {
    if (!saved.has_head || !head_out) return;
    auto head = std::make_unique<TaskHead>(saved.head, backbone, seed);
    if (!head->parameters().empty()) load_named(folder / "head.safetensors", head->parameters());
    *head_out = std::move(head);
  };
  std::string resolved;
  if (saved.method == kHeadOnly || saved.method == kFullFineTuning) {
    if (saved.method == kFullFineTuning) load_named(folder / "model.safetensors", backbone.parameters());
    load_head();
    // The built-in method joins the set like any other, so callers need no special case.
    set.add(name, saved.method, plugins.create(saved.method, "", (folder / kManifest).string(), &resolved), resolved, seed);
    return saved;
  }
  auto method = plugins.create(saved.method, saved.config_json, (folder / "adapter_config.json").string(), &resolved);
  set.add(name, saved.method, method, resolved, seed);
  try {
    const auto tensors = read_tensors(folder / "adapter_model.safetensors");
    plugin::call_plugin(saved.method, fmt::format("its load_state() of '{}'", (folder / "adapter_model.safetensors").string()),
                        [&] { method->load_state(tensors); });
    load_head();
  } catch (...) {
    set.remove(name);
    throw;
  }
  return saved;
}

void attach_method(AdapterSet& set, const plugin::PluginRegistry& plugins, const std::string& name, const std::string& method,
                   const std::string& config_json, const std::string& origin, std::uint64_t seed) {
  std::string resolved;
  auto created = plugins.create(method, config_json, origin, &resolved);
  set.add(name, method, std::move(created), resolved, seed);
}

}  // namespace graft
