// Registers a table of N-API functions on the addon's exports (one table per
// source file: addon.cc, ops_addon.cc, batch.cc).
#pragma once
#include <node_api.h>

#include <cstddef>
#include <vector>

namespace dsv4 {

struct Method {
  const char* name;
  napi_callback fn;
};

template <size_t N>
inline void defineMethods(napi_env env, napi_value exports, const Method (&methods)[N]) {
  std::vector<napi_property_descriptor> props;
  for (const Method& m : methods) props.push_back({m.name, nullptr, m.fn, nullptr, nullptr, nullptr, napi_default, nullptr});
  napi_define_properties(env, exports, props.size(), props.data());
}

}  // namespace dsv4
