// Top-k of BF16 scores in torch.topk's order (value descending, ties to the lower index, ±0 equal): the
// indexer's selection (src/tensor/topk.ts topkOrder is the reference). Linear in n: each score's
// order-preserving 16-bit key is counted, the k-th key found from the top (its high byte, then its low
// byte), and only the chosen entries sorted. At 128K context a decode step selects over 32768 entries per CSA layer.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include "ops2.h"

namespace dsv4 {
namespace ops2 {

int64_t topkBf16(const float* s, size_t n, size_t k, int32_t* out) {
  // two 8-bit histogram levels (1 KiB each, in L1 however cold the cache) rather than one of 65536 keys
  thread_local std::vector<uint16_t> keys;
  thread_local std::vector<uint64_t> chosen;
  uint32_t hi4[4][256] = {}, lo[256] = {};  // hi: 4 interleaved counts (runs of one bucket would chain increments)
  keys.resize(n);
  uint16_t* const kp = keys.data();  // (not through the thread_local in the loops)
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    std::memcpy(&u, s + i, 4);
    if ((u & 0xffff) != 0 || (u & 0x7fffffff) > 0x7f800000) return -1;  // not a BF16 value, or NaN
    const uint32_t b = u == 0x80000000u ? 0 : u >> 16;                  // -0 as +0
    const uint16_t key = uint16_t(b ^ (0x8000 | 0x7fff * (b >> 15)));  // order-preserving: negatives flipped (branch-free)
    kp[i] = key;
    hi4[i & 3][key >> 8]++;
  }
  uint32_t hi[256];
  for (int b = 0; b < 256; b++) hi[b] = hi4[0][b] + hi4[1][b] + hi4[2][b] + hi4[3][b];
  k = std::min(k, n);
  uint32_t thr = 0;
  size_t ties = n;  // k == n: every entry
  if (k < n) {
    // the k-th largest key: its top byte from the first level, its low byte from the second
    uint32_t h = 255;
    size_t above = 0;
    for (; above + hi[h] < k; h--) above += hi[h];
    for (size_t i = 0; i < n; i++)
      if (kp[i] >> 8 == h) lo[kp[i] & 255]++;
    uint32_t l = 255;
    for (; above + lo[l] < k; l--) above += lo[l];
    thr = h << 8 | l;
    ties = k - above;  // entries at the threshold key that fit, lowest indices first
  }
  chosen.clear();
  for (size_t i = 0; i < n; i++) {
    const uint32_t key = kp[i];
    if (key > thr || (key == thr && ties > 0 && ties--)) chosen.push_back(uint64_t(key) << 32 | (0xffffffffu - uint32_t(i)));
  }
  // key descending, then index ascending: one numeric sort of key << 32 | ~index
  std::sort(chosen.begin(), chosen.end(), std::greater<uint64_t>());
  for (size_t j = 0; j < chosen.size(); j++) out[j] = int32_t(0xffffffffu - uint32_t(chosen[j]));
  return int64_t(chosen.size());
}

}  // namespace ops2
}  // namespace dsv4
