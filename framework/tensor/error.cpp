#include "graft/error.h"

namespace graft {

static std::string compose(const std::string& component, const std::string& message,
                           const std::string& hint) {
  std::string text = component.empty() ? message : component + ": " + message;
  if (!hint.empty()) text += "\n  hint: " + hint;
  return text;
}

Error::Error(std::string component, std::string message, std::string hint)
    : std::runtime_error(compose(component, message, hint)),
      component_(std::move(component)),
      message_(std::move(message)),
      hint_(std::move(hint)) {}

}  // namespace graft
