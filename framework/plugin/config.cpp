#include <fmt/format.h>

#include "graft/error.h"
#include "io/json_config.h"
#include "plugin/config_impl.h"

namespace graft {

Config make_config(nlohmann::json value, std::string origin) {
  auto impl = std::make_shared<Config::Impl>();
  impl->value = std::move(value);
  impl->origin = std::move(origin);
  return Config(std::shared_ptr<const Config::Impl>(std::move(impl)));
}

Config::Config() : Config(make_config(nlohmann::json::object(), "config")) {}

Config Config::parse(const std::string& json_text, const std::string& origin) {
  nlohmann::json value = io::parse_json(json_text, origin);
  if (!value.is_object())
    throw ConfigError("config", fmt::format("{} must be a JSON object, not {}", origin, value.type_name()),
                      R"(write it as {"key": value, ...})");
  return make_config(std::move(value), origin);
}

namespace {

const nlohmann::json& at(const Config::Impl& impl, const std::string& key) {
  if (!impl.value.contains(key))
    throw ConfigError("config", fmt::format("{}: key '{}' is not set", impl.origin, key),
                      "declare it with a default in the plugin's schema");
  return impl.value.at(key);
}

template <class T>
T as(const Config::Impl& impl, const std::string& key, const char* type) {
  const nlohmann::json& v = at(impl, key);
  try {
    return v.get<T>();
  } catch (const nlohmann::json::exception&) {
    throw ConfigError("config", fmt::format("{}: key '{}' is {}, not {}", impl.origin, key, v.type_name(), type));
  }
}

}  // namespace

bool Config::has(const std::string& key) const { return impl_->value.contains(key) && !impl_->value.at(key).is_null(); }
std::int64_t Config::integer(const std::string& key) const { return as<std::int64_t>(*impl_, key, "an integer"); }
double Config::number(const std::string& key) const { return as<double>(*impl_, key, "a number"); }
bool Config::boolean(const std::string& key) const { return as<bool>(*impl_, key, "a boolean"); }
std::string Config::string(const std::string& key) const { return as<std::string>(*impl_, key, "a string"); }

std::vector<std::string> Config::strings(const std::string& key) const {
  const nlohmann::json& v = at(*impl_, key);
  if (v.is_null()) return {};
  if (v.is_string()) return {v.get<std::string>()};
  return as<std::vector<std::string>>(*impl_, key, "a string or a list of strings");
}

std::vector<std::int64_t> Config::integers(const std::string& key) const {
  const nlohmann::json& v = at(*impl_, key);
  if (v.is_null()) return {};
  if (v.is_number_integer()) return {v.get<std::int64_t>()};
  return as<std::vector<std::int64_t>>(*impl_, key, "an integer or a list of integers");
}

namespace {
template <class Test>
bool is(const Config::Impl& impl, const std::string& key, Test test) {
  const auto it = impl.value.find(key);
  return it != impl.value.end() && test(*it);
}
}  // namespace

bool Config::is_null(const std::string& key) const { return is(*impl_, key, [](const auto& v) { return v.is_null(); }); }
bool Config::is_boolean(const std::string& key) const { return is(*impl_, key, [](const auto& v) { return v.is_boolean(); }); }
bool Config::is_integer(const std::string& key) const { return is(*impl_, key, [](const auto& v) { return v.is_number_integer(); }); }
bool Config::is_number(const std::string& key) const { return is(*impl_, key, [](const auto& v) { return v.is_number(); }); }
bool Config::is_string(const std::string& key) const { return is(*impl_, key, [](const auto& v) { return v.is_string(); }); }
bool Config::is_list(const std::string& key) const { return is(*impl_, key, [](const auto& v) { return v.is_array(); }); }
bool Config::is_object(const std::string& key) const { return is(*impl_, key, [](const auto& v) { return v.is_object(); }); }

std::vector<std::string> Config::keys() const {
  std::vector<std::string> out;
  for (auto it = impl_->value.begin(); it != impl_->value.end(); ++it) out.push_back(it.key());
  return out;
}

std::string Config::origin() const { return impl_->origin; }
std::string Config::to_json(int indent) const { return impl_->value.dump(indent); }

}  // namespace graft
