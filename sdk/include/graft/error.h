// graft::Error — every failure graft reports. A message names the component it comes
// from and, where one helps, carries a hint on what to do about it.
#pragma once
#include <stdexcept>
#include <string>

namespace graft {

class Error : public std::runtime_error {
 public:
  Error(std::string component, std::string message, std::string hint = {});
  const std::string& component() const { return component_; }
  const std::string& message() const { return message_; }
  const std::string& hint() const { return hint_; }

 private:
  std::string component_, message_, hint_;
};

// A file that could not be read or written (missing, permissions, short read).
struct IoError : Error { using Error::Error; };
// A file whose contents break its format (safetensors, checkpoints, data rows).
struct FormatError : Error { using Error::Error; };
// A configuration key or value that is unknown, of the wrong type or out of range.
struct ConfigError : Error { using Error::Error; };
// Tensors whose shapes or dtypes do not fit the operation asked of them.
struct ShapeError : Error { using Error::Error; };
// A failure inside oneDNN, wrapped with the op that called it.
struct BackendError : Error { using Error::Error; };
// A plugin that cannot be loaded, gated or run.
struct PluginError : Error { using Error::Error; };

}  // namespace graft
