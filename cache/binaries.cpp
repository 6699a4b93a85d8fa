// Compiled cubins keyed by everything that decides their bytes. A lookup that misses the full
// key but finds the same kernel (source, name expressions, arch) built another way reports it as
// stale, so "why did this compile again?" has an answer.
#include "cache/database.h"
#include "cache/sha256.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace attnjit::cache {
namespace {

std::string lines(const std::vector<std::string>& items) {
  return fmt::format("{}", fmt::join(items, "\n"));
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find('\n', start), text.size());
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

struct Row {
  std::string key, nvrtc_version, options, template_hash;
};

// Why a row of the same kernel does not serve `key`; empty when it does.
std::string difference(const Row& row, const BinaryKey& key) {
  if (row.template_hash != key.template_hash)
    return fmt::format("built with templates {}, this build has {}", row.template_hash,
                       key.template_hash);
  if (row.nvrtc_version != key.nvrtc_version)
    return fmt::format("built by NVRTC {}, this is NVRTC {}", row.nvrtc_version, key.nvrtc_version);
  if (row.options != lines(key.options))
    return fmt::format("built with options [{}], now [{}]",
                       fmt::join(split_lines(row.options), " "), fmt::join(key.options, " "));
  if (row.key != hash_of(key)) return fmt::format("its key {} does not match its fields", row.key);
  return {};
}

} // namespace

std::string binary_key_hash(const std::string& source_sha256, const std::string& name_expressions,
                            const std::string& arch, const std::string& nvrtc_version,
                            const std::string& options, const std::string& template_hash) {
  Sha256 h;
  h.add_field(source_sha256).add_field(name_expressions).add_field(arch);
  h.add_field(nvrtc_version).add_field(options).add_field(template_hash);
  return h.hex();
}

std::string hash_of(const BinaryKey& key) {
  return binary_key_hash(sha256_hex(key.source), lines(key.name_expressions), key.arch,
                         key.nvrtc_version, lines(key.options), key.template_hash);
}

void Database::put_binary(const BinaryKey& key, const CachedBinary& binary) {
  sql::WriteTransaction tx(*conn_);
  sql::Use insert(statement(
      "INSERT OR REPLACE INTO binaries (key, source_sha256, name_expressions, arch, "
      "nvrtc_version, options, template_hash, lowered_names, cubin, cubin_sha256, created_at) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"));
  insert->bind(1, hash_of(key));
  insert->bind(2, sha256_hex(key.source));
  insert->bind(3, lines(key.name_expressions));
  insert->bind(4, key.arch);
  insert->bind(5, key.nvrtc_version);
  insert->bind(6, lines(key.options));
  insert->bind(7, key.template_hash);
  insert->bind(8, lines(binary.lowered_names));
  insert->bind_blob(9, binary.cubin);
  insert->bind(10, sha256_hex({binary.cubin.data(), binary.cubin.size()}));
  insert->bind(11, unix_now());
  insert->run();
  tx.commit();
}

BinaryLookup Database::find_binary(const BinaryKey& key) {
  const std::string hash = hash_of(key);
  BinaryLookup out;
  {
    sql::Use select(statement("SELECT nvrtc_version, options, template_hash, lowered_names, "
                              "cubin, cubin_sha256 FROM binaries WHERE key = ?1"));
    select->bind(1, hash);
    if (select->step()) {
      // Fields are compared too: the key is only a hash, and the row may have been edited.
      const Row row{hash, select->column_text(0), select->column_text(1), select->column_text(2)};
      if (std::string why = difference(row, key); !why.empty()) {
        out.stale = why;
        return out;
      }
      CachedBinary binary{select->column_blob(4), split_lines(select->column_text(3))};
      if (binary.cubin.empty() ||
          sha256_hex({binary.cubin.data(), binary.cubin.size()}) != select->column_text(5)) {
        out.stale = "its cubin does not match its checksum (damaged)";
        return out;
      }
      out.binary = std::move(binary);
      return out;
    }
  }
  sql::Use others(statement("SELECT key, nvrtc_version, options, template_hash FROM binaries "
                            "WHERE source_sha256 = ?1 AND name_expressions = ?2 AND arch = ?3 "
                            "ORDER BY created_at DESC LIMIT 1"));
  others->bind(1, sha256_hex(key.source));
  others->bind(2, lines(key.name_expressions));
  others->bind(3, key.arch);
  if (others->step()) {
    const Row row{others->column_text(0), others->column_text(1), others->column_text(2),
                  others->column_text(3)};
    out.stale = difference(row, key);
  }
  return out;
}

} // namespace attnjit::cache
