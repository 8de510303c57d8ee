// The layers of docs/architecture.md, checked on the includes of the source tree: the
// SDK includes only itself; framework/'s folders include only folders listed before
// them (and never a backbone); backbones/ and plugins/ never include a front end;
// nothing outside a front end includes it, except that cli (the command that starts it)
// includes serve; serve sees only the public SDK (graft/) and itself; the Python module
// (python/) sees only the public SDK. The checker is also run on a small tree
// with one wrong include of each kind, so that it is known to fail when it should.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <regex>
#include <string>
#include <vector>

namespace {
namespace fs = std::filesystem;

// framework/'s folders, lowest first; a folder may include itself and those before it.
const std::vector<std::string> kFrameworkOrder = {"tensor", "ops",   "autograd", "nn",  "io",  "text", "model",
                                                  "plugin", "peft",  "data",     "train", "api", "serve", "cli"};
// Front ends: nothing outside them includes them.
const std::vector<std::string> kFrontEnds = {"cli", "serve", "python"};

int rank_of(const std::string& folder) {
  const auto it = std::find(kFrameworkOrder.begin(), kFrameworkOrder.end(), folder);
  return it == kFrameworkOrder.end() ? -1 : static_cast<int>(it - kFrameworkOrder.begin());
}

std::vector<std::string> quoted_includes(const fs::path& file) {
  static const std::regex include(R"(^\s*#\s*include\s*"([^"]+)\")");
  std::vector<std::string> out;
  std::ifstream in(file);
  std::string line;
  std::smatch m;
  while (std::getline(in, line))
    if (std::regex_search(line, m, include)) out.push_back(m[1]);
  return out;
}

std::string first_part(const std::string& include) {
  const auto slash = include.find('/');
  return slash == std::string::npos ? "" : include.substr(0, slash);
}

bool is_front_end(const std::string& part) {
  return std::find(kFrontEnds.begin(), kFrontEnds.end(), part) != kFrontEnds.end();
}

// Every include under `root` that points the wrong way, as "file: include (why)".
std::vector<std::string> layer_violations(const fs::path& root) {
  std::vector<std::string> out;
  auto check_tree = [&](const fs::path& top, auto&& rule) {
    if (!fs::exists(top)) return;
    for (const auto& entry : fs::recursive_directory_iterator(top)) {
      const auto ext = entry.path().extension();
      if (!entry.is_regular_file() || (ext != ".h" && ext != ".cpp" && ext != ".hpp")) continue;
      const fs::path rel = fs::relative(entry.path(), root);
      for (const auto& inc : quoted_includes(entry.path()))
        if (const std::string why = rule(rel, inc); !why.empty()) out.push_back(rel.string() + ": " + inc + " (" + why + ")");
    }
  };
  check_tree(root / "sdk" / "include", [](const fs::path&, const std::string& inc) -> std::string {
    return first_part(inc) == "graft" ? "" : "the SDK includes only graft/ headers";
  });
  check_tree(root / "framework", [](const fs::path& rel, const std::string& inc) -> std::string {
    const std::string from = (++rel.begin())->string(), to = first_part(inc);
    if (to == "graft") return "";
    if (to.empty()) return "framework/ includes by folder (\"io/x.h\"), never a bare name";
    const int from_rank = rank_of(from), to_rank = rank_of(to);
    if (to_rank < 0) return "not a framework folder: framework/ knows backbones only through the registry";
    if (from_rank < 0) return "framework/" + from + " is not in the layer order of this test and docs/architecture.md";
    if (from == "serve" && to != "serve") return "serve sees the public SDK (graft/) and itself only";
    if (is_front_end(to) && to != from && !(from == "cli" && to == "serve"))
      return "a front end is included only by itself (and serve by cli, which starts it)";
    if (to_rank > from_rank) return "framework/" + from + " is below framework/" + to;
    return "";
  });
  auto no_front_end = [](const fs::path&, const std::string& inc) -> std::string {
    return is_front_end(first_part(inc)) ? "only a front end includes a front end" : "";
  };
  check_tree(root / "backbones", no_front_end);
  check_tree(root / "plugins", [](const fs::path&, const std::string& inc) -> std::string {
    const std::string to = first_part(inc);
    return to.empty() || to == "graft" ? "" : "a plugin sees the SDK and its own files only";
  });
  check_tree(root / "bench", no_front_end);
  check_tree(root / "python", [](const fs::path&, const std::string& inc) -> std::string {
    return first_part(inc) == "graft" ? "" : "the Python module sees the public SDK (graft/) only";
  });
  return out;
}

void write(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  std::ofstream(file) << text;
}

TEST(Layering, TheSourceTreeHasNoIncludePointingTheWrongWay) {
  const auto violations = layer_violations(GRAFT_SOURCE_DIR);
  std::string all;
  for (const auto& v : violations) all += "  " + v + "\n";
  EXPECT_TRUE(violations.empty()) << violations.size() << " includes point the wrong way:\n" << all;
}

TEST(Layering, TheCheckerFindsEachKindOfWrongInclude) {
  const fs::path root = fs::temp_directory_path() / ("graft_layering_" + std::to_string(::getpid()));
  fs::remove_all(root);
  write(root / "sdk/include/graft/a.h", "#include \"graft/b.h\"\n#include \"io/json_config.h\"\n");
  write(root / "framework/peft/x.cpp", "#include \"peft/x.h\"\n#include \"text/tokenizer.h\"\n#include \"train/task_head.h\"\n");
  write(root / "framework/train/y.cpp", "#include \"bert/bert_model.h\"\n#include \"cli/args.h\"\n#include \"peft/x.h\"\n");
  write(root / "framework/cli/z.cpp", "#include \"cli/args.h\"\n#include \"api/session.h\"\n#include \"serve/server.h\"\n");
  write(root / "framework/serve/s.cpp",
        "#include \"serve/batcher.h\"\n#include \"graft/session.h\"\n#include \"api/method_choice.h\"\n#include \"cli/args.h\"\n");
  write(root / "framework/api/w.cpp", "#include \"api/method_choice.h\"\n#include \"serve/server.h\"\n");
  write(root / "backbones/bert/m.cpp", "#include \"model/backbone_registry.h\"\n#include \"cli/commands.h\"\n");
  write(root / "python/module.cpp", "#include \"graft/session.h\"\n#include \"api/method_choice.h\"\n");
  write(root / "bench/b.cpp", "#include \"graft/session.h\"\n#include \"python/module.h\"\n");
  write(root / "plugins/p/p.cpp", "#include \"graft/peft.h\"\n#include \"local.h\"\n#include \"peft/adapter_set.h\"\n");
  const auto found = layer_violations(root);
  fs::remove_all(root);
  const std::vector<std::string> expected = {
      "sdk/include/graft/a.h: io/json_config.h",     "framework/peft/x.cpp: train/task_head.h",
      "framework/train/y.cpp: bert/bert_model.h",    "framework/train/y.cpp: cli/args.h",
      "backbones/bert/m.cpp: cli/commands.h",        "plugins/p/p.cpp: peft/adapter_set.h",
      "framework/serve/s.cpp: api/method_choice.h",  "framework/serve/s.cpp: cli/args.h",
      "framework/api/w.cpp: serve/server.h",         "python/module.cpp: api/method_choice.h",
      "bench/b.cpp: python/module.h"};
  ASSERT_EQ(found.size(), expected.size()) << "found: " << ::testing::PrintToString(found);
  for (const auto& e : expected)
    EXPECT_TRUE(std::any_of(found.begin(), found.end(), [&](const std::string& f) { return f.rfind(e, 0) == 0; }))
        << "not reported: " << e;
}

}  // namespace
