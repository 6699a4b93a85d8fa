// The device headers of templates/, compiled into the library (see cmake/embed_templates.cmake).
#pragma once

#include <string_view>
#include <vector>

namespace attnjit::codegen {

struct EmbeddedTemplate {
  const char* name; // include path, e.g. "attnjit/fwd_kernel.cuh"
  const char* content;
};

const std::vector<EmbeddedTemplate>& embedded_templates();

// First 16 hex digits of the SHA-256 of every template: part of every cache key.
const char* template_hash();

} // namespace attnjit::codegen
