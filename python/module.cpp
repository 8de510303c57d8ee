// graft._graft: the native half of the Python module (python/graft/ is the other), a
// front end on graft::Session that sees only the public SDK (graft/...), as the CLI
// and the server do. The Pythonic parts (keyword configs, tqdm, the generate
// generator, compare) are in python/graft/__init__.py.
//
// Every Session call runs with the GIL released; callbacks (training progress, the
// text pieces of generate) take it back. Results come back as NumPy arrays that own
// the C++ buffer they were made from (a capsule as their base): no copy where graft's
// result is already one contiguous buffer (hidden states, labels, values), one
// flattening where it is a vector of rows (embeddings, probabilities).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graft/error.h"
#include "graft/library.h"
#include "graft/session.h"

namespace py = pybind11;
namespace fs = std::filesystem;

namespace {

// A NumPy array over a moved-in std::vector, which the array's base capsule owns.
template <class T>
py::array_t<T> owning_array(std::vector<T>&& values, std::vector<py::ssize_t> shape) {
  auto* owner = new std::vector<T>(std::move(values));
  py::capsule base(owner, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, owner->data(), base);
}

// A NumPy float32 array over a Tensor's storage (kept alive by the capsule).
py::array_t<float> tensor_array(const graft::Tensor& t) {
  if (t.dtype() != graft::DType::f32) throw graft::ShapeError("python", "expected an f32 tensor");
  auto* owner = new graft::Tensor(t);
  py::capsule base(owner, [](void* p) { delete static_cast<graft::Tensor*>(p); });
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  return py::array_t<float>(shape, owner->data<float>(), base);
}

// adapter: None (the bare backbone), a name (one adapter), a composition
// ("stack(a,b)", "fuse(a,b)": docs/composition.md), or a list with one name (or None:
// bare) per row; stack: names applied in order for every row.
graft::Selection selection_of(const py::object& adapter, const py::object& stack, std::size_t rows) {
  if (!stack.is_none()) {
    if (!adapter.is_none()) throw graft::ConfigError("python", "pass adapter= or stack=, not both");
    return graft::Selection::stack(stack.cast<std::vector<std::string>>());
  }
  if (adapter.is_none()) return graft::Selection::none();
  if (py::isinstance<py::str>(adapter)) {
    const auto text = adapter.cast<std::string>();
    return text.find('(') == std::string::npos ? graft::Selection::one(text) : graft::Selection::parse(text);
  }
  std::vector<std::string> names;
  for (const auto& item : adapter) names.push_back(item.is_none() ? std::string() : item.cast<std::string>());
  if (names.size() != rows)
    throw graft::ConfigError("python", "adapter= lists " + std::to_string(names.size()) + " adapters for " +
                                           std::to_string(rows) + " rows", "give one name (or None) per row, or one name");
  return graft::Selection::per_row(std::move(names));
}

std::vector<graft::TextInput> rows_of(const py::iterable& rows) {
  std::vector<graft::TextInput> out;
  for (const auto& row : rows) {
    if (py::isinstance<py::str>(row)) {
      out.push_back({row.cast<std::string>(), std::nullopt});
    } else {
      const auto pair = row.cast<py::tuple>();
      if (pair.size() != 2) throw graft::ConfigError("python", "a row is a text or a (text, pair) tuple");
      out.push_back({pair[0].cast<std::string>(), pair[1].is_none() ? std::nullopt : std::optional(pair[1].cast<std::string>())});
    }
  }
  return out;
}

py::dict scores_dict(const graft::Scores& s) {
  py::dict d;
  for (const auto& [k, v] : s.values) d[py::str(k)] = v;
  return d;
}

py::dict adapter_dict(const graft::AdapterInfo& a) {
  py::dict d;
  d["name"] = a.name;
  d["method"] = a.method;
  d["config"] = a.config_json;
  d["description"] = a.description;
  d["trainable_parameters"] = a.trainable_parameters;
  d["head_parameters"] = a.head_parameters;
  if (a.head) {
    py::dict h;
    h["kind"] = graft::task_kind_name(a.head->kind);
    h["num_labels"] = a.head->num_labels;
    h["pooling"] = graft::pooling_name(a.head->pooling);
    d["head"] = h;
  } else {
    d["head"] = py::none();
  }
  d["source"] = a.source.string();
  d["default_lr"] = a.default_lr;
  return d;
}

// Raised in a callback to stop generate() early (the Python generator was closed).
struct StopGeneration {};

// The Python classes of graft's errors, most derived first for the translator.
struct ErrorTypes {
  py::object base, io, format, config, shape, backend, plugin;
};
ErrorTypes* error_types = nullptr;

void raise_graft_error(const py::object& type, const graft::Error& e) {
  py::object exc = type(py::str(e.what()));
  exc.attr("component") = e.component();
  exc.attr("message") = e.message();
  exc.attr("hint") = e.hint();
  PyErr_SetObject(type.ptr(), exc.ptr());
}

}  // namespace

PYBIND11_MODULE(_graft, m) {
  m.doc() = "graft's Session (native half of the graft package)";

  // Exceptions: graft.Error (a RuntimeError) and one subclass per graft error type.
  error_types = new ErrorTypes;  // never freed: its objects must outlive the interpreter's exit
  ErrorTypes& types = *error_types;
  py::object builtins = py::module_::import("builtins");
  auto make = [&](const char* name, py::object base, const char* doc) {
    py::dict ns;
    ns["__doc__"] = doc;
    ns["__module__"] = "graft";
    ns["component"] = "";
    ns["message"] = "";
    ns["hint"] = "";
    py::object t = py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(&PyType_Type))(name, py::make_tuple(base), ns);
    m.attr(name) = t;
    return t;
  };
  types.base = make("Error", builtins.attr("RuntimeError"),
                    "Every failure graft reports; .component, .message and .hint as graft gives them.");
  types.io = make("IoError", types.base, "A file that could not be read or written.");
  types.format = make("FormatError", types.base, "A file whose contents break its format.");
  types.config = make("ConfigError", types.base, "A configuration key or value that is unknown, of the wrong type or out of range.");
  types.shape = make("ShapeError", types.base, "Tensors whose shapes or dtypes do not fit.");
  types.backend = make("BackendError", types.base, "A failure inside oneDNN.");
  types.plugin = make("PluginError", types.base, "A plugin that cannot be loaded, gated or run.");
  py::register_exception_translator([](std::exception_ptr p) {
    if (!p) return;
    try {
      std::rethrow_exception(p);
    } catch (const graft::IoError& e) {
      raise_graft_error(error_types->io, e);
    } catch (const graft::FormatError& e) {
      raise_graft_error(error_types->format, e);
    } catch (const graft::ConfigError& e) {
      raise_graft_error(error_types->config, e);
    } catch (const graft::ShapeError& e) {
      raise_graft_error(error_types->shape, e);
    } catch (const graft::BackendError& e) {
      raise_graft_error(error_types->backend, e);
    } catch (const graft::PluginError& e) {
      raise_graft_error(error_types->plugin, e);
    } catch (const graft::Error& e) {
      raise_graft_error(error_types->base, e);
    }
  });

  // ---- library-level ----------------------------------------------------------------
  m.def("plugins", [](const std::vector<fs::path>& dirs) {
    graft::PluginListing listing;
    {
      py::gil_scoped_release nogil;
      listing = graft::list_plugins(dirs);
    }
    py::list plugins;
    for (const auto& p : listing.plugins) {
      py::dict d;
      d["name"] = p.name;
      d["version"] = p.version;
      d["description"] = p.description;
      d["file"] = p.file.string();
      d["peft_types"] = p.peft_types;
      py::dict aliases;
      for (const auto& [alias, preset] : p.aliases) aliases[py::str(alias)] = preset;
      d["aliases"] = aliases;
      d["default_lr"] = p.default_lr;
      d["config_schema"] = p.schema_json;
      d["builtin"] = p.builtin;
      plugins.append(d);
    }
    py::list failures;
    for (const auto& [file, why] : listing.failures) failures.append(py::make_tuple(file.string(), why));
    py::list search;
    for (const auto& dir : listing.search_path) search.append(dir.string());
    return py::make_tuple(plugins, failures, search);
  }, py::arg("plugin_dirs") = std::vector<fs::path>{});

  py::class_<graft::data::Dataset>(m, "Dataset", "Task rows as graft's readers make them.")
      .def("__len__", [](const graft::data::Dataset& d) { return d.examples.size(); })
      .def_readonly("task", &graft::data::Dataset::task)
      .def_readonly("label_names", &graft::data::Dataset::label_names)
      .def_readonly("metric", &graft::data::Dataset::metric)
      .def_property_readonly("source", [](const graft::data::Dataset& d) { return d.source.string(); })
      .def_property_readonly("texts", [](const graft::data::Dataset& d) {
        std::vector<std::string> out;
        for (const auto& e : d.examples) out.push_back(e.text);
        return out;
      })
      .def_property_readonly("labels", [](const graft::data::Dataset& d) {
        std::vector<double> out;
        for (const auto& e : d.examples) out.push_back(e.label);
        return owning_array(std::move(out), {static_cast<py::ssize_t>(d.examples.size())});
      })
      .def("rows", [](const graft::data::Dataset& d, std::size_t start, std::size_t stop) {
        graft::data::Dataset out = d;
        stop = std::min(stop, d.examples.size());
        start = std::min(start, stop);
        out.examples.assign(d.examples.begin() + static_cast<std::ptrdiff_t>(start),
                            d.examples.begin() + static_cast<std::ptrdiff_t>(stop));
        return out;
      }, py::arg("start"), py::arg("stop"), "A copy holding rows [start, stop).")
      .def("inputs", [](const graft::data::Dataset& d) {
        py::list out;
        for (const auto& e : d.examples)
          out.append(e.has_pair ? py::object(py::make_tuple(e.text, e.text_pair)) : py::object(py::str(e.text)));
        return out;
      }, "The rows as predict() takes them: texts, or (text, pair) tuples.");

  m.def("read_task_data", [](const std::string& task, const fs::path& file, bool regression,
                             const std::vector<std::string>& label_names) {
    py::gil_scoped_release nogil;
    return graft::read_task_data(task, file, regression, label_names);
  }, py::arg("task"), py::arg("file"), py::arg("regression") = false, py::arg("label_names") = std::vector<std::string>{});

  // ---- Session ----------------------------------------------------------------------
  py::class_<graft::Session>(m, "Session", py::dynamic_attr())
      .def(py::init([](const fs::path& backbone, const std::string& dtype, const std::vector<fs::path>& plugin_dirs) {
             graft::SessionOptions options;
             if (dtype == "bf16") options.dtype = graft::DType::bf16;
             else if (dtype != "f32") throw graft::ConfigError("python", "dtype '" + dtype + "' is not f32 or bf16");
             options.plugin_dirs = plugin_dirs;
             py::gil_scoped_release nogil;
             return std::make_unique<graft::Session>(backbone, options);
           }),
           py::arg("backbone"), py::arg("dtype") = "f32", py::arg("plugin_dirs") = std::vector<fs::path>{})
      .def_property_readonly("info", [](const graft::Session& s) {
        const auto& b = s.backbone_info();
        py::dict d;
        d["architecture"] = b.architecture;
        d["source"] = b.source;
        d["num_layers"] = b.num_layers;
        d["hidden_size"] = b.hidden_size;
        d["num_heads"] = b.num_heads;
        d["vocab_size"] = b.vocab_size;
        d["max_positions"] = b.max_positions;
        d["parameter_count"] = b.parameter_count;
        d["dtype"] = graft::dtype_name(b.dtype);
        d["causal"] = b.causal;
        d["tokenizer"] = s.tokenizer_summary();
        return d;
      })
      .def_property_readonly("warnings", &graft::Session::warnings)
      .def("add_adapter", &graft::Session::add_adapter, py::arg("name"), py::arg("method"), py::arg("config_json") = "",
           py::arg("seed") = 42, py::arg("origin") = "config", py::call_guard<py::gil_scoped_release>())
      .def("load_adapter", &graft::Session::load_adapter, py::arg("name"), py::arg("folder"),
           py::call_guard<py::gil_scoped_release>())
      .def("save_adapter", &graft::Session::save_adapter, py::arg("name"), py::arg("folder"),
           py::call_guard<py::gil_scoped_release>())
      .def("export_merged", [](graft::Session& s, const std::string& name, const std::string& folder) {
        graft::ExportSummary r;
        {
          py::gil_scoped_release nogil;
          r = s.export_merged(name, folder);
        }
        py::dict d;
        d["folder"] = r.folder.string();
        d["method"] = r.method;
        d["weights_dtype"] = r.weights_dtype;
        d["changed"] = r.changed;
        d["tensors"] = r.tensors;
        d["files"] = r.files;
        d["notes"] = r.notes;
        return d;
      }, py::arg("name"), py::arg("folder"))
      .def("unload_adapter", &graft::Session::unload_adapter, py::arg("name"), py::call_guard<py::gil_scoped_release>())
      .def("merge_adapters", [](graft::Session& s, const std::string& name, const std::vector<std::pair<std::string, double>>& adapters,
                                const std::string& combination, std::optional<double> density, const std::string& majority_sign,
                                std::int64_t svd_rank, bool dare_rescale, std::uint64_t seed, const std::string& head) {
        graft::MergeOptions o;
        o.combination = combination;
        o.density = density;
        o.majority_sign = majority_sign;
        o.svd_rank = svd_rank;
        o.dare_rescale = dare_rescale;
        o.seed = seed;
        o.head = head;
        py::gil_scoped_release nogil;
        s.merge_adapters(name, adapters, o);
      }, py::arg("name"), py::arg("adapters"), py::kw_only(), py::arg("combination") = "linear", py::arg("density") = py::none(),
         py::arg("majority_sign") = "total", py::arg("svd_rank") = 0, py::arg("dare_rescale") = true, py::arg("seed") = 0,
         py::arg("head") = "")
      .def("adapter_names", &graft::Session::adapter_names, py::call_guard<py::gil_scoped_release>())
      .def("adapter", [](const graft::Session& s, const std::string& name) {
        graft::AdapterInfo info;
        {
          py::gil_scoped_release nogil;
          info = s.adapter(name);
        }
        return adapter_dict(info);
      }, py::arg("name"))
      .def("add_head", [](graft::Session& s, const std::string& name, const graft::data::Dataset& data,
                          std::optional<std::string> pooling) {
        std::optional<graft::Pooling> p;
        if (pooling) p = graft::parse_pooling(*pooling);
        py::gil_scoped_release nogil;
        s.add_head(name, data, p);
      }, py::arg("name"), py::arg("data"), py::arg("pooling") = py::none())
      .def("hidden_states", [](const graft::Session& s, const std::vector<std::string>& texts, py::object adapter,
                               py::object stack) {
        const graft::Selection sel = selection_of(adapter, stack, texts.size());
        graft::Tensor t;
        {
          py::gil_scoped_release nogil;
          t = s.forward(texts, sel);
        }
        return tensor_array(t);
      }, py::arg("texts"), py::kw_only(), py::arg("adapter") = py::none(), py::arg("stack") = py::none(),
         "Final hidden states [rows, tokens, hidden] (float32, padded to the longest row).")
      .def("predict", [](const graft::Session& s, const py::iterable& rows_in, py::object adapter, py::object stack,
                         std::size_t batch_size, std::size_t max_length) {
        const auto rows = rows_of(rows_in);
        const graft::Selection sel = selection_of(adapter, stack, rows.size());
        std::vector<graft::Prediction> preds;
        {
          py::gil_scoped_release nogil;
          preds = s.predict(rows, sel, {batch_size, max_length});
        }
        const auto n = static_cast<py::ssize_t>(preds.size());
        std::vector<std::int64_t> labels(preds.size());
        std::vector<double> values(preds.size());
        std::size_t width = 0;
        for (const auto& p : preds) width = std::max(width, p.probabilities.size());
        std::vector<float> probs(preds.size() * width, 0.f);
        for (std::size_t i = 0; i < preds.size(); ++i) {
          labels[i] = preds[i].label;
          values[i] = preds[i].value;
          std::copy(preds[i].probabilities.begin(), preds[i].probabilities.end(), probs.begin() + static_cast<std::ptrdiff_t>(i * width));
        }
        return py::make_tuple(owning_array(std::move(labels), {n}), owning_array(std::move(values), {n}),
                              owning_array(std::move(probs), {n, static_cast<py::ssize_t>(width)}));
      }, py::arg("rows"), py::kw_only(), py::arg("adapter") = py::none(), py::arg("stack") = py::none(),
         py::arg("batch_size") = 32, py::arg("max_length") = 128)
      .def("embed", [](const graft::Session& s, const std::vector<std::string>& texts, py::object adapter, py::object stack,
                       bool normalize, std::optional<std::size_t> max_length, std::optional<std::string> pooling) {
        const graft::Selection sel = selection_of(adapter, stack, texts.size());
        graft::EmbedOptions options;
        options.normalize = normalize;
        options.max_length = max_length;
        if (pooling) options.pooling = graft::parse_pooling(*pooling);
        std::vector<float> flat;
        std::size_t width = 0;
        {
          py::gil_scoped_release nogil;
          const auto rows = s.embed(texts, sel, options);
          width = rows.empty() ? static_cast<std::size_t>(s.backbone_info().hidden_size) : rows.front().size();
          flat.reserve(rows.size() * width);
          for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
        }
        // One row per text (per text and branch with a parallel block).
        const auto n = static_cast<py::ssize_t>(width ? flat.size() / width : texts.size());
        return owning_array(std::move(flat), {n, static_cast<py::ssize_t>(width)});
      }, py::arg("texts"), py::kw_only(), py::arg("adapter") = py::none(), py::arg("stack") = py::none(),
         py::arg("normalize") = true, py::arg("max_length") = py::none(), py::arg("pooling") = py::none())
      // on_text(piece: bytes) -> False stops; the pieces are bytes (a piece may end inside
      // a UTF-8 sequence); the Python side decodes them incrementally.
      .def("_generate", [](const graft::Session& s, const std::string& prompt, py::object adapter, py::object stack,
                           std::int64_t max_tokens, float temperature, float top_p, std::uint64_t seed, py::object on_text) {
        const graft::Selection sel = selection_of(adapter, stack, 1);
        graft::GenerateOptions options{max_tokens, temperature, top_p, seed};
        std::function<void(const std::string&)> cb;
        if (!on_text.is_none())
          cb = [&on_text](const std::string& piece) {
            py::gil_scoped_acquire gil;
            py::object r = on_text(py::bytes(piece));
            if (r.is(py::bool_(false))) throw StopGeneration{};
          };
        std::string text;
        bool stopped = false;
        {
          py::gil_scoped_release nogil;
          try {
            text = s.generate(prompt, sel, options, cb);
          } catch (const StopGeneration&) {
            stopped = true;
          }
        }
        return py::make_tuple(py::bytes(text), stopped);
      }, py::arg("prompt"), py::kw_only(), py::arg("adapter") = py::none(), py::arg("stack") = py::none(),
         py::arg("max_tokens") = 128, py::arg("temperature") = 0.f, py::arg("top_p") = 1.f, py::arg("seed") = 0,
         py::arg("on_text") = py::none())
      .def("evaluate", [](const graft::Session& s, const graft::data::Dataset& dev, py::object adapter, py::object stack,
                          std::size_t batch_size, std::size_t max_length) {
        const graft::Selection sel = selection_of(adapter, stack, dev.examples.size());
        graft::Scores scores;
        {
          py::gil_scoped_release nogil;
          scores = s.evaluate(dev, sel, {batch_size, max_length});
        }
        py::dict d = scores_dict(scores);
        return py::make_tuple(d, scores.headline);
      }, py::arg("dev"), py::kw_only(), py::arg("adapter") = py::none(), py::arg("stack") = py::none(),
         py::arg("batch_size") = 32, py::arg("max_length") = 128)
      // on_progress(dict) after every step and evaluation; an exception in it (a
      // KeyboardInterrupt from Ctrl-C included: signals are checked there) stops the run
      // at that step boundary, checkpoint written, and is raised again here.
      .def("_train", [](graft::Session& s, const std::string& name, const graft::data::Dataset& train,
                        const graft::data::Dataset& dev, py::dict kw, py::object on_progress) {
        graft::TrainOptions o;
        if (kw.contains("epochs")) o.epochs = kw["epochs"].cast<std::int64_t>();
        if (kw.contains("max_steps")) o.max_steps = kw["max_steps"].cast<std::int64_t>();
        if (kw.contains("batch_size")) o.batch_size = kw["batch_size"].cast<std::size_t>();
        if (kw.contains("grad_accumulation")) o.grad_accumulation = kw["grad_accumulation"].cast<std::size_t>();
        if (kw.contains("max_length")) o.max_length = kw["max_length"].cast<std::size_t>();
        if (kw.contains("lr")) o.lr = kw["lr"].cast<float>();
        if (kw.contains("weight_decay")) o.weight_decay = kw["weight_decay"].cast<float>();
        if (kw.contains("warmup_ratio")) o.warmup_ratio = kw["warmup_ratio"].cast<float>();
        if (kw.contains("max_grad_norm")) o.max_grad_norm = kw["max_grad_norm"].cast<float>();
        if (kw.contains("schedule")) o.schedule = kw["schedule"].cast<std::string>();
        if (kw.contains("seed")) o.seed = kw["seed"].cast<std::uint64_t>();
        if (kw.contains("eval_every")) o.eval_every = kw["eval_every"].cast<std::int64_t>();
        if (kw.contains("save_every")) o.save_every = kw["save_every"].cast<std::int64_t>();
        if (kw.contains("patience")) o.patience = kw["patience"].cast<std::int64_t>();
        if (kw.contains("output")) o.output = kw["output"].cast<fs::path>();
        if (kw.contains("pooling")) o.pooling = graft::parse_pooling(kw["pooling"].cast<std::string>());
        if (kw.contains("progress_line")) o.progress_line = kw["progress_line"].cast<bool>();
        if (kw.contains("label")) o.label = kw["label"].cast<std::string>();
        if (kw.contains("compose")) o.compose = graft::Selection::parse(kw["compose"].cast<std::string>());
        for (auto item : kw) {
          static const std::vector<std::string> known = {"epochs", "max_steps", "batch_size", "grad_accumulation", "max_length",
                                                         "lr", "weight_decay", "warmup_ratio", "max_grad_norm", "schedule",
                                                         "seed", "eval_every", "save_every", "patience", "output", "pooling",
                                                         "progress_line", "label", "compose"};
          const auto key = item.first.cast<std::string>();
          if (std::find(known.begin(), known.end(), key) == known.end())
            throw graft::ConfigError("train", "unknown training option '" + key + "'");
        }
        std::optional<py::error_already_set> pending;  // the callback's exception, raised after the run
        std::atomic<bool> stop{false};
        o.on_progress = [&](const graft::TrainProgress& p) {
          if (stop) return;
          py::gil_scoped_acquire gil;
          try {
            if (PyErr_CheckSignals() != 0) throw py::error_already_set();
            if (!on_progress.is_none()) {
              py::dict d;
              d["step"] = p.step;
              d["total_steps"] = p.total_steps;
              d["loss"] = p.loss;
              d["lr"] = p.lr;
              d["tokens_per_second"] = p.tokens_per_second;
              if (p.evaluation) {
                d["evaluation"] = scores_dict(*p.evaluation);
                d["headline"] = p.evaluation->headline;
              }
              on_progress(d);
            }
          } catch (py::error_already_set& e) {
            pending.emplace(std::move(e));
            stop = true;
          }
        };
        o.should_stop = [&] { return stop.load(); };
        graft::TrainSummary r;
        {
          py::gil_scoped_release nogil;
          r = s.train(name, train, dev, o);
        }
        if (pending) throw std::move(*pending);
        py::dict d;
        d["best"] = scores_dict(r.best);
        d["last"] = scores_dict(r.last);
        py::list evals;
        for (const graft::EvalPoint& e : r.evals) {
          py::dict point;
          point["step"] = e.step;
          point["train_loss"] = e.train_loss;
          point["scores"] = scores_dict(e.scores);
          evals.append(point);
        }
        d["evals"] = evals;
        d["headline"] = r.best.headline;
        d["best_score"] = r.best.headline.empty() ? py::object(py::none()) : py::object(py::float_(r.best.score()));
        d["best_step"] = r.best_step;
        d["steps"] = r.steps;
        d["seconds"] = r.seconds;
        d["tokens_per_second"] = r.tokens_per_second;
        d["peak_memory_mib"] = r.peak_memory_mib;
        d["resumed"] = r.resumed;
        d["stopped"] = r.stopped;
        d["early_stopped"] = r.early_stopped;
        d["already_finished"] = r.already_finished;
        d["lr"] = r.lr;
        d["trainable_parameters"] = r.trainable_parameters;
        d["best_folder"] = r.best_folder.string();
        return d;
      }, py::arg("name"), py::arg("train"), py::arg("dev"), py::arg("options"), py::arg("on_progress") = py::none());
}
