// Tuning records as JSON, for `attnjit cache export --json` and `attnjit cache import`. Cubins
// are not exported: they are rebuilt from the records by compiling, and are per-NVRTC anyway.
#pragma once

#include <attnjit/cache.h>

#include <string>
#include <vector>

namespace attnjit::apps {

// {"format": "attnjit-cache-records", "version": 1, "records": [{...}, ...]}; one object per
// record with device, spec, shape and config as nested objects (docs/CACHE.md, "Export").
std::string records_to_json(const std::vector<cache::TuningRecord>& records);

// The inverse; throws Error(invalid_argument) naming `origin`, the record index and the field.
std::vector<cache::TuningRecord> records_from_json(const std::string& text,
                                                   const std::string& origin);

} // namespace attnjit::apps
