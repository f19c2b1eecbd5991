// The compute arbiter: GPU-time shares by weight, one token holder at a time when more than one
// tenant (container) wants the GPU, the next holder chosen by least virtual time. See
// docs/shim.md, "Compute shares".
//
// Layout of the per-GPU table (version 1; fixed-width fields, native little-endian). It lives in
// a shared file the control plane creates (arbiter_region.h); this header holds the layout and the
// pure scheduling logic over it, with time as a parameter (nanoseconds on one monotonic clock), so
// the logic is unit-tested without processes and driven by the simulated GPU in tests.
//
// Virtual time: a tenant's charged GPU time x 100 / weight. Charging happens only while some
// other tenant waits (a lone tenant is never charged, never throttled). A tenant that wakes
// starts at the minimum virtual time of the active tenants, so it cannot bank credit while idle.
// Turn: the holder keeps the token for `turn_ns` (adapted to its mean kernel time) while others
// wait; it is then charged from its grant to the completion of the last work it launched (an
// overrun is debt: its virtual time grows by it). A holder that neither hands on nor launches is
// revoked after its turn plus `lease_ns` by any waiter (a dead holder the same way).
#pragma once

#include <pthread.h>

#include <cstdint>

namespace gpuslice::shim {

inline constexpr std::uint32_t kArbiterMagic = 0x42415347;  // "GSAB" little-endian
inline constexpr std::uint32_t kArbiterVersion = 1;
inline constexpr std::uint32_t kArbiterTenants = 64;
inline constexpr std::uint32_t kNoTenant = 0xffffffffu;

enum class TenantState : std::uint32_t { kFree = 0, kIdle = 1, kWaiting = 2, kHolding = 3 };

struct ArbiterTenant {
  std::uint32_t state;   // TenantState
  std::uint32_t weight;  // 1-100 (the container's gpu-compute percent)
  std::int32_t pid;      // diagnostics only
  std::uint32_t charging;
  std::uint64_t vtime;           // charged ns * 100 / weight
  std::uint64_t charged_ns;      // GPU time charged in total (diagnostics, tests)
  std::uint64_t charged_until;   // charged up to this time
  std::uint64_t mean_kernel_ns;  // mean launch time in its last turn (turn adaptation)
  std::uint64_t reserved[2];
};
static_assert(sizeof(ArbiterTenant) == 64);

// `token` packs the holder (low 32 bits, kNoTenant when none) and the number of waiters (high
// 32): a holder alone reads exactly Pack(self, 0), which is the whole launch fast path.
struct ArbiterHeader {
  std::uint32_t magic;
  std::uint32_t version;
  std::uint32_t header_bytes;
  std::uint32_t tenant_bytes;
  std::uint32_t tenant_count;
  std::uint32_t reserved0;
  std::uint64_t token;
  std::uint64_t grant_ns;  // when the holder's turn started (or contention began)
  std::uint64_t turn_ns;   // its turn length
  std::uint64_t grants;    // number of grants (diagnostics, tests)
  std::uint64_t reserved[7];
  union {
    pthread_mutex_t mutex;
    unsigned char mutex_storage[64];
  };
};
static_assert(sizeof(pthread_mutex_t) <= 64);
static_assert(sizeof(ArbiterHeader) == 176);

struct ArbiterLayout {
  ArbiterHeader header;
  ArbiterTenant tenants[kArbiterTenants];
};

constexpr std::uint64_t PackToken(std::uint32_t holder, std::uint32_t waiters) {
  return (static_cast<std::uint64_t>(waiters) << 32) | holder;
}
constexpr std::uint32_t TokenHolder(std::uint64_t token) {
  return static_cast<std::uint32_t>(token);
}
constexpr std::uint32_t TokenWaiters(std::uint64_t token) {
  return static_cast<std::uint32_t>(token >> 32);
}

struct ArbiterParams {
  std::uint64_t min_turn_ns = 2'000'000;
  std::uint64_t max_turn_ns = 16'000'000;
  std::uint64_t kernels_per_turn = 8;   // turn = this many of the holder's mean kernels, clamped
  std::uint64_t lease_ns = 20'000'000;  // a holder past turn + lease is revoked by a waiter
  // An honest tenant never waits longer than this for the token, whatever anyone wrote into the
  // table (legitimate waits stay far below: 100 / weight turns); it then runs unarbitrated for
  // `bypass_ns` (the hardware's equal turns) and tries again.
  std::uint64_t max_wait_ns = 4'000'000'000;
  std::uint64_t bypass_ns = 10'000'000'000;
};

// Liveness of a tenant record (its owner holds the record's lock); the pure logic asks, the
// region answers (tests answer from a table).
class TenantLiveness {
 public:
  virtual ~TenantLiveness() = default;
  virtual bool Alive(std::uint32_t tenant) = 0;
};

// ---- Pure operations. The caller holds the table's mutex; `now_ns` is the current time. ----

// Fills a fresh table (control plane; the mutex is initialised by the region).
void InitArbiterTable(ArbiterLayout* table) noexcept;
// Takes a free record for a tenant of `weight` (1-100). Returns its index or kNoTenant.
std::uint32_t JoinTenant(ArbiterLayout* table, std::uint32_t weight, std::int32_t pid) noexcept;
// Takes record `index` if it is free; false otherwise.
bool JoinTenantAt(ArbiterLayout* table, std::uint32_t index, std::uint32_t weight,
                  std::int32_t pid) noexcept;
// Frees `tenant`'s record (normal exit); hands the token on if it held it.
void LeaveTenant(ArbiterLayout* table, std::uint32_t tenant, std::uint64_t now_ns,
                 const ArbiterParams& params, TenantLiveness* liveness) noexcept;
// `tenant` wants the GPU: joins the waiters (waking at the minimum active virtual time), takes a
// free token, or revokes a holder past its turn plus lease. True when `tenant` holds the token.
bool AcquireToken(ArbiterLayout* table, std::uint32_t tenant, std::uint64_t now_ns,
                  const ArbiterParams& params, TenantLiveness* liveness) noexcept;
// Whether the holder `tenant` must hand on now: others wait and its turn is over.
bool TurnOver(const ArbiterLayout* table, std::uint32_t tenant, std::uint64_t now_ns) noexcept;
// `tenant` stops holding: charged up to `completion_ns` (when the last work it launched
// finished) for `launches` launches; it waits again when `wants_more`, else goes idle. The token
// goes to the least virtual time among the waiters.
void ReleaseToken(ArbiterLayout* table, std::uint32_t tenant, std::uint64_t completion_ns,
                  std::uint64_t launches, bool wants_more, std::uint64_t now_ns,
                  const ArbiterParams& params, TenantLiveness* liveness) noexcept;

// ---- The per-process side: one tenant's gate over a table. ----

// Access to a table: its mutex (the region's robust mutex; nothing in tests) and liveness.
class ArbiterTableAccess : public TenantLiveness {
 public:
  virtual ArbiterLayout* table() = 0;
  virtual void Lock() = 0;
  virtual void Unlock() = 0;
};

enum class GateDecision { kGo, kWait, kDrainThenRelease };

// A tenant's admission decisions. Not thread-safe: the caller serialises (the shim holds a
// process mutex on the slow path).
class TenantGate {
 public:
  // `cap_percent` (0: none) is a hard cap: the tenant then never runs alone untimed, holds the
  // token one turn at a time and stays off afterwards for its turn x (100 - cap) / cap.
  TenantGate(ArbiterTableAccess* access, std::uint32_t tenant, const ArbiterParams& params,
             std::uint32_t cap_percent = 0)
      : access_(access), tenant_(tenant), params_(params), cap_percent_(cap_percent) {}

  // The launch fast path: true when this tenant holds the token and nobody waits. (A capped
  // tenant never takes it: the shim checks `capped()` when it sets up its fast path.)
  bool Alone() const noexcept {
    return __atomic_load_n(&access_->table()->header.token, __ATOMIC_ACQUIRE) ==
           PackToken(tenant_, 0);
  }
  // Called before every launch. kGo: launch now. kWait: retry shortly. kDrainThenRelease: wait
  // for this tenant's launched work to finish, then call Release with its completion time.
  GateDecision BeforeLaunch(std::uint64_t now_ns) noexcept;
  void Release(std::uint64_t completion_ns, std::uint64_t now_ns, bool wants_more) noexcept;
  // Whether this tenant thinks it holds the token (it may have been revoked since).
  bool holding() const noexcept { return holding_; }
  bool capped() const noexcept { return cap_percent_ != 0; }
  // Whether the last kGo came from the bypass (the table looked hostile), not from the token.
  bool bypassing(std::uint64_t now_ns) const noexcept { return now_ns < bypass_until_; }
  std::uint32_t tenant() const noexcept { return tenant_; }

 private:
  ArbiterTableAccess* access_;
  std::uint32_t tenant_;
  ArbiterParams params_;
  bool holding_ = false;
  std::uint64_t launches_ = 0;  // launches in the current turn
  std::uint32_t cap_percent_ = 0;
  std::uint64_t held_since_ = 0;     // when this tenant got the token (cap accounting)
  std::uint64_t cap_resume_ns_ = 0;  // a capped tenant stays off until then
  std::uint64_t wait_since_ = 0;     // 0: not waiting
  std::uint64_t bypass_until_ = 0;
};

}  // namespace gpuslice::shim
