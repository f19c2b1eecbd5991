// The compute arbiter: GPU-time shares by weight, one token holder at a time when more than one
// process wants the GPU, the next holder's container chosen by least virtual time. See
// docs/shim.md, "Compute shares".
//
// Who writes what (version 2). Every decision depends only on state no tenant can write:
//  - The REFEREE (the control plane: a thread per GPU in the node agent, or in one `gpuslice run`
//    supervisor) keeps the authoritative state in its own memory — each container's weight and
//    cap (from the control plane, never from a tenant), virtual time, charge, the holder, its
//    grant time and lease — and publishes the grant in the GPU's GRANT PAGE (ArbiterGrantPage),
//    which tenants map read-only (a read-only mount in a pod).
//  - Each container writes only its own REQUEST FILE (ArbiterRequests, mounted only into that
//    container): per process "I want the GPU", "I hand back grant N, my last work completed at
//    T", and a doorbell word the referee futex-waits on. The referee reads it with pread (a
//    tenant that truncates or scribbles on it harms only its own requests) and never trusts a
//    number from it beyond: a release of the holder's current grant, and a completion time that
//    may only extend a revoked holder's charge up to the referee's own clock.
//  - Waiters futex-wait on the grant page's `seq` (FUTEX_WAIT works on a read-only mapping); the
//    launch path of a tenant alone, or holding, reads the token word and makes no system call.
//
// Virtual time: a container's charged GPU time x 100 / weight, charged from the referee's clock
// (grant, or the moment contention begins, to the release or revocation it sees). Charging only
// happens while some other process waits (a lone tenant is never charged or throttled). A
// container that wakes starts at the minimum virtual time of the active containers (no credit
// banked while idle). The holder keeps the token for a turn (adapted to its mean kernel time,
// 2-16 ms) while others wait; then the referee flags the token "release" and the holder drains
// its work and hands back. A holder that does not hand back within its turn plus the lease is
// revoked by the referee, charged to that moment; its backlog, when it reports it, is debt.
//
// The core logic (RefereeCore, TenantGate) is pure, with time as a parameter, so it is unit-tested
// and driven by the simulated GPU without processes; arbiter_referee.h runs it for real.
#pragma once

#include <cstdint>

namespace gpuslice::shim {

inline constexpr std::uint32_t kArbiterMagic = 0x42415347;   // "GSAB": the grant page
inline constexpr std::uint32_t kRequestsMagic = 0x52415347;  // "GSAR": a request file
inline constexpr std::uint32_t kArbiterVersion = 2;
inline constexpr std::uint32_t kArbiterTenants = 64;      // containers per GPU
inline constexpr std::uint32_t kProcessesPerTenant = 16;  // processes per container
inline constexpr std::uint32_t kNoTenant = 0xffffffffu;

// Token word: holder (low 32 bits: tenant x kProcessesPerTenant + process, kNoTenant when none),
// waiters (bits 32-61), "timed" (bit 62: a capped holder, whose turn ends even alone) and
// "release" (bit 63: the holder's turn is over). A holder alone reads exactly PackToken(self, 0).
inline constexpr std::uint64_t kTokenTimed = 1ULL << 62;
inline constexpr std::uint64_t kTokenRelease = 1ULL << 63;
constexpr std::uint64_t PackToken(std::uint32_t holder, std::uint32_t waiters,
                                  std::uint64_t flags = 0) {
  return ((static_cast<std::uint64_t>(waiters) & 0x3fffffffULL) << 32) | holder | flags;
}
constexpr std::uint32_t TokenHolder(std::uint64_t token) {
  return static_cast<std::uint32_t>(token);
}
constexpr std::uint32_t TokenWaiters(std::uint64_t token) {
  return static_cast<std::uint32_t>((token >> 32) & 0x3fffffffULL);
}
constexpr std::uint32_t HolderId(std::uint32_t tenant, std::uint32_t process) {
  return tenant * kProcessesPerTenant + process;
}

enum class TenantState : std::uint32_t { kFree = 0, kIdle = 1, kWaiting = 2, kHolding = 3 };

// What the referee publishes about a container (diagnostics and tests; never read back).
// A process finds its container's slot by its request file's identity (st_dev, st_ino).
struct PublishedTenant {
  std::uint32_t state;  // TenantState
  std::uint32_t weight;
  std::uint32_t cap_percent;
  std::uint32_t reserved0;
  std::uint64_t vtime;
  std::uint64_t charged_ns;
  std::uint64_t requests_dev;
  std::uint64_t requests_ino;
  std::uint64_t reserved[2];
};
static_assert(sizeof(PublishedTenant) == 64);

// The grant page: written by the referee only, mapped read-only by tenants.
struct ArbiterGrantPage {
  std::uint32_t magic;
  std::uint32_t version;
  std::uint32_t page_bytes;
  std::uint32_t tenant_count;
  std::uint64_t token;
  std::uint32_t seq;  // futex word: bumped whenever `token` changes
  std::uint32_t reserved0;
  std::uint64_t grant_id;  // bumped at every grant; a release names the grant it hands back
  std::uint64_t grant_ns;  // when the holder's turn (its charge) started
  std::uint64_t turn_ns;
  std::uint64_t grants;  // diagnostics, tests
  std::uint64_t reserved[8];
  PublishedTenant tenants[kArbiterTenants];
};
static_assert(sizeof(ArbiterGrantPage) == 128 + 64 * kArbiterTenants);

// One process's requests (written by that process; its container can write them all).
struct ProcessRequest {
  std::uint32_t in_use;  // 1 while a process holds the record (its OFD lock says whether it lives)
  std::uint32_t want;    // 1: wants the GPU (or keeps holding it)
  std::int32_t pid;      // diagnostics only
  std::uint32_t reserved0;
  std::uint64_t release_grant;  // the grant_id it hands back
  std::uint64_t completion_ns;  // when its last work of that grant completed (only extends debt)
  std::uint64_t launches;       // launches in that grant (turn adaptation)
  std::uint64_t reserved[3];
};
static_assert(sizeof(ProcessRequest) == 64);

// A container's request file: created by the control plane, mounted only into that container.
struct ArbiterRequests {
  std::uint32_t magic;
  std::uint32_t version;
  std::uint32_t doorbell;  // futex word the referee waits on: bumped after every change
  std::uint32_t reserved0;
  std::uint64_t reserved[6];
  ProcessRequest processes[kProcessesPerTenant];
};
static_assert(sizeof(ArbiterRequests) == 64 + 64 * kProcessesPerTenant);

struct ArbiterParams {
  std::uint64_t min_turn_ns = 2'000'000;
  std::uint64_t max_turn_ns = 16'000'000;
  std::uint64_t kernels_per_turn = 8;   // turn = this many of the holder's mean kernels, clamped
  std::uint64_t lease_ns = 20'000'000;  // a holder past turn + lease is revoked by the referee
  // An honest tenant never waits longer than this for the token (legitimate waits stay far
  // below: 100 / weight turns). Past it (no referee: an agent restart) it runs unarbitrated for
  // `bypass_ns` (the hardware's equal turns) and tries again.
  std::uint64_t max_wait_ns = 4'000'000'000;
  std::uint64_t bypass_ns = 10'000'000'000;
};

// What the referee reads each look: a copy of each container's requests, and process liveness.
class RequestView {
 public:
  virtual ~RequestView() = default;
  // A copy of `tenant`'s request file, or null when it cannot be read (then it wants nothing).
  virtual const ArbiterRequests* Requests(std::uint32_t tenant) = 0;
  virtual bool Alive(std::uint32_t tenant, std::uint32_t process) = 0;
};

// The referee's decisions. Not thread-safe: one referee thread per GPU.
class RefereeCore {
 public:
  // `first_grant`: grant ids continue above it (a referee that takes over a page in use picks
  // one no earlier referee issued, e.g. its clock, so a stale release matches no new grant).
  RefereeCore(ArbiterGrantPage* page, const ArbiterParams& params, std::uint64_t first_grant = 0);

  // Control plane: a container with `weight` (1-100) and `cap_percent` (0: none) in slot
  // `tenant`. False when the slot is taken or out of range.
  // `requests_dev`/`requests_ino` identify its request file (published, so its processes find
  // their slot).
  bool AddTenant(std::uint32_t tenant, std::uint32_t weight, std::uint32_t cap_percent,
                 std::uint64_t requests_dev = 0, std::uint64_t requests_ino = 0);
  void RemoveTenant(std::uint32_t tenant, std::uint64_t now_ns);
  bool Present(std::uint32_t tenant) const;

  // One look at every container's requests at `now_ns`: releases, revocations, grants; publishes
  // the token. Returns when it must look again at the latest (UINT64_MAX: only on a doorbell).
  std::uint64_t Poll(std::uint64_t now_ns, RequestView& view);

  // A container's virtual time and charge carried over from an earlier referee (a node agent
  // restart), for a container just added.
  void RestoreAccount(std::uint32_t tenant, std::uint64_t vtime, std::uint64_t charged_ns);

  std::uint64_t vtime(std::uint32_t tenant) const { return accounts_[tenant].vtime; }
  std::uint64_t charged_ns(std::uint32_t tenant) const { return accounts_[tenant].charged_ns; }

 private:
  struct Account {
    bool present = false;
    std::uint32_t weight = 100;
    std::uint32_t cap_percent = 0;
    bool active = false;  // some process wanted the GPU at the last look
    bool charging = false;
    std::uint64_t vtime = 0;
    std::uint64_t charged_ns = 0;
    std::uint64_t charged_until = 0;
    std::uint64_t mean_kernel_ns = 0;
    std::uint64_t cap_resume_ns = 0;  // a capped container is not granted before this
    std::uint32_t next_process = 0;   // round robin among its processes
    std::uint32_t wanting = 0;        // bit per process: wants the GPU (alive)
    std::uint64_t revoked_grant = 0;  // a revoked grant whose backlog may still be reported
    std::uint32_t revoked_process = 0;
    std::uint64_t revoked_at = 0;
    std::uint64_t requests_dev = 0;
    std::uint64_t requests_ino = 0;
  };

  void Charge(Account& a, std::uint64_t until_ns);
  void LookAtHolder(std::uint64_t now_ns, RequestView& view);
  void ChargeRevokedBacklog(std::uint32_t tenant, const ArbiterRequests& requests,
                            std::uint64_t now_ns);
  void Revoke(std::uint64_t now_ns);
  void GrantNext(std::uint64_t now_ns);
  std::uint32_t CountWaiters() const;
  void Publish(std::uint64_t token);
  std::uint64_t TurnFor(const Account& a) const;

  ArbiterGrantPage* page_;
  ArbiterParams params_;
  Account accounts_[kArbiterTenants];
  std::uint32_t holder_ = kNoTenant;  // HolderId
  std::uint64_t grant_id_ = 0;
  std::uint64_t grant_ns_ = 0;
  std::uint64_t held_since_ = 0;
  std::uint64_t turn_ns_ = 0;
  bool release_flagged_ = false;
  std::uint64_t published_ = PackToken(kNoTenant, 0);  // what the page must say
};

// Fills a fresh grant page (the referee; also re-initialises one in place).
void InitGrantPage(ArbiterGrantPage* page) noexcept;
// Fills a fresh request file (the control plane).
void InitRequests(ArbiterRequests* requests) noexcept;

// ---- The tenant's side: one process's gate over the grant page and its own request record. ----

// kDrain: while others wait, the holder has about a turn of work queued: wait for it (then call
// Drained) before launching more, so that no tenant runs on a backlog past its turn.
enum class GateDecision { kGo, kWait, kDrain, kDrainThenRelease };

// Rings the referee's doorbell for this container (shim: atomic add + FUTEX_WAKE).
class Doorbell {
 public:
  virtual ~Doorbell() = default;
  virtual void Ring() noexcept = 0;
};

// A process's admission decisions. Not thread-safe: the caller serialises (the shim holds a
// process mutex on the slow path).
class TenantGate {
 public:
  TenantGate(const ArbiterGrantPage* page, ProcessRequest* mine, std::uint32_t holder_id,
             Doorbell* doorbell, const ArbiterParams& params)
      : page_(page), mine_(mine), id_(holder_id), doorbell_(doorbell), params_(params) {}

  // The launch fast path: true when this process holds the token and nobody waits.
  bool Alone() const noexcept {
    return __atomic_load_n(&page_->token, __ATOMIC_ACQUIRE) == PackToken(id_, 0);
  }
  // Called before every launch. kGo: launch now. kWait: wait for the grant page to change
  // (futex on `seq`) and retry. kDrainThenRelease: wait for this process's launched work to
  // finish, then call Release with its completion time.
  GateDecision BeforeLaunch(std::uint64_t now_ns) noexcept;
  void Release(std::uint64_t completion_ns, std::uint64_t now_ns, bool wants_more) noexcept;
  // After kDrain: this process's launched work completed at `completion_ns`.
  void Drained(std::uint64_t completion_ns) noexcept;
  // A process that stops wanting the GPU without holding it (the simulation's idle windows).
  void StopWanting() noexcept;
  // Whether the referee asks the holder to hand back (its turn is over).
  bool ReleaseRequested() const noexcept;

  // The holder's fast path (the shim's launch path while others wait). After BeforeLaunch said
  // kGo to a holder: how many more launches it would answer kGo with nothing but its counters
  // changing, as long as the token word stays `go_token()` — the queued-work bound left until
  // the next drain (unbounded, kUnboundedLaunches, when nobody waits and the turn is not timed).
  // The shim lets that many launches go on one compare of the token word and an atomic
  // decrement, then reports how many went with CountLaunches; the turn's end (the referee sets
  // "release" in the token), a waiter arriving or leaving, a revocation or a drain all change
  // the token word or the budget, so the next launch takes BeforeLaunch again.
  static constexpr std::uint64_t kUnboundedLaunches = 1ULL << 30;
  std::uint64_t LaunchesWithoutCheck() const noexcept;
  std::uint64_t go_token() const noexcept { return go_token_; }
  // `launches` went on the fast path since the last BeforeLaunch (exactly as if BeforeLaunch had
  // answered kGo to each).
  void CountLaunches(std::uint64_t launches) noexcept;
  bool holding() const noexcept { return holding_; }
  // Whether the grant this process took at its last kGo as holder is still the published one
  // (false once the referee revoked it or granted anew): a multi-device launch that waited for a
  // later GPU's token checks its earlier ones with this before launching.
  bool StillHolds() const noexcept {
    return holding_ && TokenHolder(__atomic_load_n(&page_->token, __ATOMIC_ACQUIRE)) == id_ &&
           __atomic_load_n(&page_->grant_id, __ATOMIC_ACQUIRE) == grant_;
  }
  // Until the referee lists this process's container the id is kNoTenant and the gate waits.
  void set_holder_id(std::uint32_t holder_id) noexcept { id_ = holder_id; }
  bool bypassing(std::uint64_t now_ns) const noexcept { return now_ns < bypass_until_; }
  std::uint32_t holder_id() const noexcept { return id_; }

 private:
  void Want(bool want) noexcept;
  bool QueuedTooMuch() const noexcept;

  const ArbiterGrantPage* page_;
  ProcessRequest* mine_;
  std::uint32_t id_;
  Doorbell* doorbell_;
  ArbiterParams params_;
  bool holding_ = false;
  bool wanting_ = false;
  std::uint64_t grant_ = 0;         // the grant this process holds
  std::uint64_t released_ = 0;      // the grant it last handed back (until the referee moves on)
  std::uint64_t launches_ = 0;      // launches in the current grant
  std::uint64_t go_token_ = ~0ULL;  // the token word at the last kGo to the holder (or ~0)
  // Queued-work bound: launches since the last drain, when that drain finished, and this
  // process's mean time per launch (measured between drains; 0 until known).
  std::uint64_t since_drain_ = 0;
  std::uint64_t drained_at_ = 0;
  std::uint64_t mean_launch_ns_ = 0;
  std::uint64_t wait_since_ = 0;
  std::uint64_t bypass_until_ = 0;
};

}  // namespace gpuslice::shim
