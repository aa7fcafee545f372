#include "profile/roofline.h"

#include <algorithm>

namespace tokenscope::profile {

Spread spread_of(std::vector<double> v) {
  Spread s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  s.lo = v.front();
  s.hi = v.back();
  s.n = static_cast<int>(n);
  return s;
}

}  // namespace tokenscope::profile
