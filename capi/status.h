// The C boundary's error handling: every exported function runs its body through guarded(), which
// turns whatever the C++ side throws into an attnjit_status and this thread's last-error message
// ("<function>: <what>"), so no exception ever reaches a C caller.
#pragma once

#include <attnjit/c_api.h>
#include <attnjit/error.h>

#include <string>

namespace attnjit::capi {

void clear_last_error();
// Classifies the exception being handled (call only inside a catch block), records its message
// prefixed with `function`, and returns the status for it.
attnjit_status record_current_exception(const char* function) noexcept;

// Allocation-free on success (run() goes through it), hence a template rather than std::function.
template <class Body> attnjit_status guarded(const char* function, Body&& body) noexcept {
  clear_last_error();
  try {
    body();
    return ATTNJIT_OK;
  } catch (...) {
    return record_current_exception(function);
  }
}

// Throws Error(invalid_argument) "<name> is null".
void require(const void* pointer, const char* name);

} // namespace attnjit::capi
