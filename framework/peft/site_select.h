// Choosing sites by name, like target_modules / layers_to_transform elsewhere.
#pragma once
#include <string>
#include <vector>

#include "graft/site.h"

namespace graft {

// Does `pattern` name `site`? A pattern is a full site name ("layers.3.attention.query"),
// a module name ("attention.query") or its last part ("query"), the checkpoint's
// module name or its tail ("q_proj", "self_attn.q_proj" — what PEFT's target_modules
// hold), or a glob over site names where '*' matches anything and "A-B" matches a
// layer number in [A, B] ("layers.0-5.*").
bool site_matches(const std::string& pattern, const Site& site);

// The sites of `kind` that match any of `patterns` (all of that kind when empty), in
// layer `layers` only when that list is not empty. A pattern matching no site of this
// kind is a ConfigError listing what the backbone offers.
std::vector<const Site*> select_sites(const std::vector<Site>& sites, SiteKind kind, const std::vector<std::string>& patterns,
                                      const std::vector<std::int64_t>& layers, const std::string& who);

}  // namespace graft
