// Portable fast products: std::fmaf in increasing k, one accumulator per output (fast.h).
#include <algorithm>
#include <cmath>
#include <vector>

#include "fast.h"

namespace dsv4 {
namespace fast {
namespace scalar {

void prepare(const Act& a, int t0, int t1) {
  const int m1 = std::min(t1 * a.tw, a.rows);
  for (int m = t0 * a.tw; m < m1; m++)
    for (int k = 0; k < a.K; k++) a.prep[size_t(m) * a.K + k] = actValue(a, m, k);
}

void run(const Job& j, int p0, int p1, int t0, int t1) {
  const Act& a = *j.act;
  const int K = a.K, nr = panelRows(a), n1 = std::min(p1 * nr, j.n), m0 = t0 * a.tw, m1 = std::min(t1 * a.tw, a.rows);
  thread_local std::vector<float> w;
  w.resize(size_t(K));
  for (int c = p0 * nr; c < n1; c++) {
    weightRow(j, j.r0 + c, 0, K, w.data());
    for (int m = m0; m < m1; m++) {
      const float* x = a.prep + size_t(m) * K;
      float acc = 0;
      for (int k = 0; k < K; k++) acc = std::fmaf(w[size_t(k)], x[k], acc);
      j.y[size_t(m) * j.n + c] = acc;
    }
  }
}

}  // namespace scalar
}  // namespace fast
}  // namespace dsv4
