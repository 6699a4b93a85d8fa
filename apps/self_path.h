// This binary's path, so `tune` and `run --tune-on-miss` can start `attnjit tune-worker` from the
// same build.
#pragma once

#include <string>

namespace attnjit::apps {

// /proc/self/exe resolved; throws Error(internal) when it cannot be read.
std::string self_path();

} // namespace attnjit::apps
