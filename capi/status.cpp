#include "capi/status.h"

#include <exception>
#include <new>

namespace attnjit::capi {
namespace {

thread_local std::string last_error;

attnjit_status status_of(ErrorKind kind) {
  switch (kind) {
  case ErrorKind::invalid_argument:
    return ATTNJIT_ERROR_INVALID_ARGUMENT;
  case ErrorKind::unsupported:
    return ATTNJIT_ERROR_UNSUPPORTED;
  case ErrorKind::no_device:
    return ATTNJIT_ERROR_NO_DEVICE;
  case ErrorKind::driver:
    return ATTNJIT_ERROR_DRIVER;
  case ErrorKind::compile:
    return ATTNJIT_ERROR_COMPILE;
  case ErrorKind::cache:
    return ATTNJIT_ERROR_CACHE;
  case ErrorKind::internal:
    return ATTNJIT_ERROR_INTERNAL;
  }
  return ATTNJIT_ERROR_INTERNAL;
}

} // namespace

void clear_last_error() {
  last_error.clear(); // keeps the capacity: no allocation on the success path
}

attnjit_status record_current_exception(const char* function) noexcept {
  attnjit_status status = ATTNJIT_ERROR_INTERNAL;
  const char* what = "unknown exception";
  std::string detail;
  try {
    throw;
  } catch (const Error& e) {
    status = status_of(e.kind());
    what = e.what();
  } catch (const std::bad_alloc&) {
    what = "out of host memory";
  } catch (const std::exception& e) {
    detail = std::string("internal error: ") + e.what();
    what = detail.c_str();
  } catch (...) {
  }
  try {
    last_error = std::string(function) + ": " + what;
  } catch (...) {
    last_error.clear(); // no memory for the message: the status still says what kind it was
  }
  return status;
}

void require(const void* pointer, const char* name) {
  if (pointer == nullptr) throw Error(ErrorKind::invalid_argument, std::string(name) + " is null");
}

} // namespace attnjit::capi

extern "C" {

const char* attnjit_last_error(void) {
  return attnjit::capi::last_error.c_str();
}

const char* attnjit_status_name(attnjit_status status) {
  switch (status) {
  case ATTNJIT_OK:
    return "ATTNJIT_OK";
  case ATTNJIT_ERROR_INVALID_ARGUMENT:
    return "ATTNJIT_ERROR_INVALID_ARGUMENT";
  case ATTNJIT_ERROR_UNSUPPORTED:
    return "ATTNJIT_ERROR_UNSUPPORTED";
  case ATTNJIT_ERROR_NO_DEVICE:
    return "ATTNJIT_ERROR_NO_DEVICE";
  case ATTNJIT_ERROR_DRIVER:
    return "ATTNJIT_ERROR_DRIVER";
  case ATTNJIT_ERROR_COMPILE:
    return "ATTNJIT_ERROR_COMPILE";
  case ATTNJIT_ERROR_CACHE:
    return "ATTNJIT_ERROR_CACHE";
  case ATTNJIT_ERROR_INTERNAL:
    return "ATTNJIT_ERROR_INTERNAL";
  }
  return "ATTNJIT_STATUS_UNKNOWN";
}

} // extern "C"
