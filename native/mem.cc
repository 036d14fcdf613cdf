// Memory advice for weight buffers: transparent huge pages on the 2 MiB-aligned
// interior of a buffer (THP is often "madvise" only). A decode token streams
// ~1 GB of weights; with 4 KiB pages every page costs a TLB miss and a page
// walk, with 2 MiB pages 512x fewer. Advice only: never changes any bytes.
#include <node_api.h>

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "methods.h"
#include "napi_call.h"

namespace dsv4 {
namespace {

constexpr uintptr_t kHuge = uintptr_t(2) << 20;

/** adviseHuge(bytes: Uint8Array): bytes advised (0 where unsupported or the buffer holds no aligned 2 MiB page). */
napi_value AdviseHuge(napi_env env, napi_callback_info info) {
  Call c(env, info, "adviseHuge", 1);
  size_t len = 0;
  uint8_t* p = c.array<uint8_t>(0, napi_uint8_array, 0, &len);
  if (!c.ok()) return c.fail();
  double advised = 0;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const uintptr_t lo = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t hi = (reinterpret_cast<uintptr_t>(p) + len) & ~(kHuge - 1);
  if (hi > lo && madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE) == 0) advised = double(hi - lo);
#endif
  return c.result(advised);
}

/** alignOffset(bytes: Uint8Array, align: power of two): bytes from bytes[0] to the next address that is a
 *  multiple of align (0 when it already is), so JS can carve aligned views out of a larger buffer. */
napi_value AlignOffset(napi_env env, napi_callback_info info) {
  Call c(env, info, "alignOffset", 2);
  size_t len = 0;
  uint8_t* p = c.array<uint8_t>(0, napi_uint8_array, 0, &len);
  const double align = c.number(1);
  if (!c.ok() || !(align >= 1 && align <= double(uintptr_t(1) << 30)) || (uintptr_t(align) & (uintptr_t(align) - 1)) != 0)
    return c.fail("dsv4 native alignOffset: a Uint8Array and a power of two up to 2^30 expected");
  const uintptr_t a = uintptr_t(align);
  return c.result(double((a - reinterpret_cast<uintptr_t>(p) % a) % a));
}

}  // namespace

void registerMem(napi_env env, napi_value exports) {
  const Method methods[] = {{"adviseHuge", AdviseHuge}, {"alignOffset", AlignOffset}};
  defineMethods(env, exports, methods);
}

}  // namespace dsv4
