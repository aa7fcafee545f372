// Named PMU events ("INST_RETIRED.ANY", "STALL_BACKEND_MEM", "perf::PAGE-FAULTS") resolved to perf_event
// encodings through libpfm4, when tokenscope is built with it (Debian package libpfm4-dev).
#pragma once

#include <string>

#include "profile/counters.h"

namespace tokenscope::profile {

// Whether this build can resolve named events.
bool have_libpfm();
// The event's perf_event encoding; throws Error naming the event when it is unknown here or when
// tokenscope was built without libpfm4.
CounterSpec resolve_named_event(const std::string& name);

}  // namespace tokenscope::profile
