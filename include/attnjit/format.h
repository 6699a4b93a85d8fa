// fmt formatters so logs, errors and the CLI print specs and configs the same way.
#pragma once

#include <attnjit/spec.h>
#include <fmt/format.h>

#define ATTNJIT_FORMAT_AS_STRING(T)                                                                \
  template <> struct fmt::formatter<T> : fmt::formatter<std::string> {                             \
    template <class Ctx> auto format(const T& v, Ctx& ctx) const {                                 \
      return fmt::formatter<std::string>::format(attnjit::to_string(v), ctx);                      \
    }                                                                                              \
  };

ATTNJIT_FORMAT_AS_STRING(attnjit::KernelSpec)
ATTNJIT_FORMAT_AS_STRING(attnjit::AttentionShape)
ATTNJIT_FORMAT_AS_STRING(attnjit::TileConfig)

#undef ATTNJIT_FORMAT_AS_STRING
