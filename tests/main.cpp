#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdlib>

int main(int argc, char** argv) {
  // Plans read and write the user's tuning database by default; tests must not touch it. Tests
  // of that path point ATTNJIT_CACHE_DB at a file of their own.
  setenv("ATTNJIT_CACHE_DB", "off", /*overwrite=*/0);
  doctest::Context context(argc, argv);
  return context.run();
}
