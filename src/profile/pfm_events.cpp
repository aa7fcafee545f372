#include "profile/pfm_events.h"

#include <linux/perf_event.h>

#include <cstring>
#include <mutex>

#include "base/error.h"

#if defined(TS_HAVE_LIBPFM)
#include <perfmon/pfmlib_perf_event.h>
#endif

namespace tokenscope::profile {

#if defined(TS_HAVE_LIBPFM)

bool have_libpfm() { return true; }

CounterSpec resolve_named_event(const std::string& name) {
  static std::once_flag once;
  static int init = PFM_SUCCESS;
  std::call_once(once, [] { init = pfm_initialize(); });
  if (init != PFM_SUCCESS) fail("--event %s: libpfm4 did not initialize (%s)", name.c_str(), pfm_strerror(init));
  perf_event_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.size = sizeof attr;
  pfm_perf_encode_arg_t arg;
  std::memset(&arg, 0, sizeof arg);
  arg.attr = &attr;
  arg.size = sizeof arg;
  const int r = pfm_get_os_event_encoding(name.c_str(), PFM_PLM3, PFM_OS_PERF_EVENT, &arg);
  if (r != PFM_SUCCESS)
    fail("--event %s: not an event of this machine's PMUs according to libpfm4 (%s); `showevtinfo` from libpfm4's "
         "examples lists them",
         name.c_str(), pfm_strerror(r));
  CounterSpec s;
  s.name = name;
  s.type = attr.type;
  s.config = attr.config;
  s.config1 = attr.config1;
  s.config2 = attr.config2;
  s.scale = 1;
  s.hardware = attr.type != PERF_TYPE_SOFTWARE;
  return s;
}

#else

bool have_libpfm() { return false; }

CounterSpec resolve_named_event(const std::string& name) {
  fail("--event %s: this tokenscope was built without libpfm4 (install libpfm4-dev and rebuild)", name.c_str());
}

#endif

}  // namespace tokenscope::profile
