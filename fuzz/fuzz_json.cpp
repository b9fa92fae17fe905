// libFuzzer target: the JSON reader every user-supplied config goes through (parse_json, nesting
// bound, duplicate keys) and JsonConfig's bounded look-ups. Any exception but InputError is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "diffbench/error.hpp"
#include "diffbench/io/json_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (bool unique : {false, true}) {
    try {
      const auto j = diffbench::parse_json(text, "fuzz.json", unique);
      if (!j.is_object()) continue;
      const diffbench::JsonConfig c(j, "fuzz.json");
      for (const auto& [key, value] : j.items()) {
        try {
          c.get_int(key, 1, 1, 1 << 20);
        } catch (const diffbench::InputError&) {
        }
        try {
          c.get_int_list(key, {}, 0, 16384);
        } catch (const diffbench::InputError&) {
        }
        try {
          c.get_double(key, 1.0, -1e6, 1e6);
        } catch (const diffbench::InputError&) {
        }
      }
      (void)j.dump();
    } catch (const diffbench::InputError&) {
    }
  }
  return 0;
}
