// The message of the exception of type E that `f` throws: a test failure (and "") when
// it throws nothing or another exception.
#pragma once
#include <gtest/gtest.h>

#include <exception>
#include <string>

namespace graft::testing {

template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "did not throw";
  return "";
}

}  // namespace graft::testing
