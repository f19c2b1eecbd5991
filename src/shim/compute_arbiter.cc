#include "shim/compute_arbiter.h"

#include <cstring>

namespace gpuslice::shim {
namespace {

constexpr std::uint32_t S(TenantState s) { return static_cast<std::uint32_t>(s); }

std::uint32_t TenantOf(std::uint32_t holder) { return holder / kProcessesPerTenant; }
std::uint32_t ProcessOf(std::uint32_t holder) { return holder % kProcessesPerTenant; }

}  // namespace

void InitGrantPage(ArbiterGrantPage* page) noexcept {
  std::memset(static_cast<void*>(page->tenants), 0, sizeof(page->tenants));
  page->version = kArbiterVersion;
  page->page_bytes = sizeof(ArbiterGrantPage);
  page->tenant_count = kArbiterTenants;
  page->grant_id = 0;
  page->grant_ns = 0;
  page->turn_ns = 0;
  page->grants = 0;
  __atomic_store_n(&page->token, PackToken(kNoTenant, 0), __ATOMIC_RELEASE);
  __atomic_add_fetch(&page->seq, 1, __ATOMIC_RELEASE);
  __atomic_store_n(&page->magic, kArbiterMagic, __ATOMIC_RELEASE);
}

void InitRequests(ArbiterRequests* requests) noexcept {
  std::memset(static_cast<void*>(requests), 0, sizeof(*requests));
  requests->version = kArbiterVersion;
  __atomic_store_n(&requests->magic, kRequestsMagic, __ATOMIC_RELEASE);
}

// ---- RefereeCore ----

RefereeCore::RefereeCore(ArbiterGrantPage* page, const ArbiterParams& params,
                         std::uint64_t first_grant)
    : page_(page), params_(params), grant_id_(first_grant) {}

bool RefereeCore::AddTenant(std::uint32_t tenant, std::uint32_t weight, std::uint32_t cap_percent,
                            std::uint64_t requests_dev, std::uint64_t requests_ino) {
  if (tenant >= kArbiterTenants || accounts_[tenant].present) return false;
  Account a;
  a.present = true;
  a.weight = weight < 1 ? 1 : (weight > 100 ? 100 : weight);
  a.cap_percent = cap_percent > 100 ? 100 : cap_percent;
  a.requests_dev = requests_dev;
  a.requests_ino = requests_ino;
  accounts_[tenant] = a;
  PublishedTenant& p = page_->tenants[tenant];
  p.weight = a.weight;
  p.cap_percent = a.cap_percent;
  p.vtime = 0;
  p.charged_ns = 0;
  p.requests_dev = requests_dev;
  p.requests_ino = requests_ino;
  __atomic_store_n(&p.state, S(TenantState::kIdle), __ATOMIC_RELEASE);
  return true;
}

void RefereeCore::RemoveTenant(std::uint32_t tenant, std::uint64_t now_ns) {
  if (tenant >= kArbiterTenants || !accounts_[tenant].present) return;
  if (holder_ != kNoTenant && TenantOf(holder_) == tenant) {
    holder_ = kNoTenant;
    accounts_[tenant].wanting = 0;
    GrantNext(now_ns);
  }
  accounts_[tenant] = Account{};
  __atomic_store_n(&page_->tenants[tenant].state, S(TenantState::kFree), __ATOMIC_RELEASE);
  Publish(holder_ == kNoTenant ? PackToken(kNoTenant, 0)
                               : PackToken(holder_, CountWaiters(),
                                           __atomic_load_n(&page_->token, __ATOMIC_ACQUIRE) &
                                               (kTokenTimed | kTokenRelease)));
}

void RefereeCore::RestoreAccount(std::uint32_t tenant, std::uint64_t vtime,
                                 std::uint64_t charged_ns) {
  if (tenant >= kArbiterTenants || !accounts_[tenant].present) return;
  accounts_[tenant].vtime = vtime;
  accounts_[tenant].charged_ns = charged_ns;
  page_->tenants[tenant].vtime = vtime;
  page_->tenants[tenant].charged_ns = charged_ns;
}

bool RefereeCore::Present(std::uint32_t tenant) const {
  return tenant < kArbiterTenants && accounts_[tenant].present;
}

void RefereeCore::Charge(Account& a, std::uint64_t until_ns) {
  if (!a.charging || until_ns <= a.charged_until) return;
  const std::uint64_t ns = until_ns - a.charged_until;
  a.charged_until = until_ns;
  a.charged_ns += ns;
  a.vtime += ns * 100 / a.weight;
}

std::uint64_t RefereeCore::TurnFor(const Account& a) const {
  std::uint64_t turn = a.mean_kernel_ns * params_.kernels_per_turn;
  if (turn < params_.min_turn_ns) turn = params_.min_turn_ns;
  if (turn > params_.max_turn_ns) turn = params_.max_turn_ns;
  return turn;
}

// Processes that want the GPU, other than the holder.
std::uint32_t RefereeCore::CountWaiters() const {
  std::uint32_t waiters = 0;
  for (std::uint32_t t = 0; t < kArbiterTenants; ++t) {
    std::uint32_t bits = accounts_[t].wanting;
    if (holder_ != kNoTenant && TenantOf(holder_) == t) bits &= ~(1u << ProcessOf(holder_));
    waiters += static_cast<std::uint32_t>(__builtin_popcount(bits));
  }
  return waiters;
}

// The holder is charged up to now and loses the token; its backlog, reported with its release
// of this grant, is charged later as debt (ChargeRevokedBacklog).
void RefereeCore::Revoke(std::uint64_t now_ns) {
  Account& a = accounts_[TenantOf(holder_)];
  a.charging = a.charging || CountWaiters() > 0;
  Charge(a, now_ns);
  a.charging = false;
  a.revoked_grant = grant_id_;
  a.revoked_process = ProcessOf(holder_);
  a.revoked_at = now_ns;
  holder_ = kNoTenant;
}

void RefereeCore::ChargeRevokedBacklog(std::uint32_t tenant, const ArbiterRequests& requests,
                                       std::uint64_t now_ns) {
  Account& a = accounts_[tenant];
  if (a.revoked_grant == 0) return;
  const ProcessRequest& r = requests.processes[a.revoked_process];
  if (r.release_grant != a.revoked_grant) return;
  // The tenant's figure can only add to its charge, and never past the referee's clock.
  std::uint64_t until = r.completion_ns < now_ns ? r.completion_ns : now_ns;
  if (until > a.revoked_at) {
    a.charging = true;
    a.charged_until = a.revoked_at;
    Charge(a, until);
    a.charging = false;
  }
  a.revoked_grant = 0;
}

// The holder released its grant, died, or overstayed its turn plus lease.
void RefereeCore::LookAtHolder(std::uint64_t now_ns, RequestView& view) {
  const std::uint32_t t = TenantOf(holder_);
  const std::uint32_t p = ProcessOf(holder_);
  Account& a = accounts_[t];
  const ArbiterRequests* requests = view.Requests(t);
  if (requests == nullptr || !view.Alive(t, p)) {
    Revoke(now_ns);
    a.revoked_grant = 0;  // nobody left to report a backlog
    return;
  }
  const ProcessRequest& r = requests->processes[p];
  if (r.release_grant == grant_id_) {
    const std::uint64_t before = a.charged_ns;
    Charge(a, now_ns);  // the referee's clock: the release it sees
    a.charging = false;
    const std::uint64_t turn = a.charged_ns - before;
    if (r.launches > 0 && turn > 0) a.mean_kernel_ns = turn / r.launches;
    if (a.cap_percent != 0) {
      const std::uint64_t busy = now_ns - held_since_;
      a.cap_resume_ns = now_ns + busy * (100 - a.cap_percent) / a.cap_percent;
    }
    holder_ = kNoTenant;
    return;
  }
  const bool timed = a.cap_percent != 0;
  if (CountWaiters() > 0 && !a.charging) {
    // Contention begins: the holder's turn (and its charge) starts now, not at its grant.
    a.charging = true;
    a.charged_until = now_ns;
    grant_ns_ = now_ns;
    turn_ns_ = TurnFor(a);
    return;
  }
  if (!a.charging && !timed) return;  // alone: never throttled
  if (now_ns >= grant_ns_ + turn_ns_) release_flagged_ = true;
  if (now_ns > grant_ns_ + turn_ns_ + params_.lease_ns) Revoke(now_ns);
}

void RefereeCore::GrantNext(std::uint64_t now_ns) {
  std::uint32_t chosen = kNoTenant;
  for (std::uint32_t t = 0; t < kArbiterTenants; ++t) {
    const Account& a = accounts_[t];
    if (!a.present || a.wanting == 0 || now_ns < a.cap_resume_ns) continue;
    if (chosen == kNoTenant || a.vtime < accounts_[chosen].vtime) chosen = t;
  }
  release_flagged_ = false;
  if (chosen == kNoTenant) return;
  Account& a = accounts_[chosen];
  std::uint32_t process = a.next_process;
  while ((a.wanting & (1u << process)) == 0) process = (process + 1) % kProcessesPerTenant;
  a.next_process = (process + 1) % kProcessesPerTenant;
  holder_ = HolderId(chosen, process);
  ++grant_id_;
  grant_ns_ = now_ns;
  held_since_ = now_ns;
  turn_ns_ = TurnFor(a);
  a.charging = CountWaiters() > 0;
  a.charged_until = now_ns;
  __atomic_store_n(&page_->grant_id, grant_id_, __ATOMIC_RELEASE);  // before the token
  page_->grant_ns = grant_ns_;
  page_->turn_ns = turn_ns_;
  ++page_->grants;
}

std::uint64_t RefereeCore::Poll(std::uint64_t now_ns, RequestView& view) {
  if (__atomic_load_n(&page_->magic, __ATOMIC_ACQUIRE) != kArbiterMagic) {
    // Zeroed by someone (a page mounted writable): rebuilt from the referee's own state.
    InitGrantPage(page_);
    __atomic_store_n(&page_->grant_id, grant_id_, __ATOMIC_RELEASE);
    page_->grant_ns = grant_ns_;
    page_->turn_ns = turn_ns_;
    published_ = ~0ULL;
  }
  // Who wants the GPU; containers that wake start at the minimum active virtual time.
  std::uint64_t floor = UINT64_MAX;
  for (std::uint32_t t = 0; t < kArbiterTenants; ++t) {
    Account& a = accounts_[t];
    a.wanting = 0;
    if (!a.present) continue;
    const ArbiterRequests* requests = view.Requests(t);
    if (requests == nullptr) continue;
    ChargeRevokedBacklog(t, *requests, now_ns);
    for (std::uint32_t p = 0; p < kProcessesPerTenant; ++p) {
      const ProcessRequest& r = requests->processes[p];
      if (r.want == 1 && view.Alive(t, p)) a.wanting |= 1u << p;
    }
    if (a.active && a.vtime < floor) floor = a.vtime;
  }
  for (Account& a : accounts_) {
    if (a.present && a.wanting != 0 && !a.active && floor != UINT64_MAX && a.vtime < floor) {
      a.vtime = floor;  // no credit banked while idle
    }
  }
  if (holder_ != kNoTenant) LookAtHolder(now_ns, view);
  if (holder_ == kNoTenant) GrantNext(now_ns);
  for (std::uint32_t t = 0; t < kArbiterTenants; ++t) {
    Account& a = accounts_[t];
    const bool holds = holder_ != kNoTenant && TenantOf(holder_) == t;
    a.active = a.present && (a.wanting != 0 || holds);
    PublishedTenant& p = page_->tenants[t];
    if (a.present) {
      p.vtime = a.vtime;
      p.charged_ns = a.charged_ns;
      p.weight = a.weight;
      p.cap_percent = a.cap_percent;
      p.requests_dev = a.requests_dev;
      p.requests_ino = a.requests_ino;
      p.state = holds ? S(TenantState::kHolding)
                      : (a.wanting != 0 ? S(TenantState::kWaiting) : S(TenantState::kIdle));
    }
  }
  std::uint64_t token = PackToken(kNoTenant, 0);
  std::uint64_t next = UINT64_MAX;
  if (holder_ != kNoTenant) {
    const Account& a = accounts_[TenantOf(holder_)];
    const bool timed = a.cap_percent != 0;
    token = PackToken(holder_, CountWaiters(),
                      (timed ? kTokenTimed : 0) | (release_flagged_ ? kTokenRelease : 0));
    if (a.charging || timed) {
      next = release_flagged_ ? grant_ns_ + turn_ns_ + params_.lease_ns + 1 : grant_ns_ + turn_ns_;
    }
  }
  for (const Account& a : accounts_) {
    if (a.present && a.wanting != 0 && a.cap_resume_ns > now_ns && a.cap_resume_ns < next) {
      next = a.cap_resume_ns;
    }
  }
  Publish(token);
  return next;
}

void RefereeCore::Publish(std::uint64_t token) {
  // Compared with the page too: a forged token (a page mounted writable) is overwritten.
  if (published_ == token && __atomic_load_n(&page_->token, __ATOMIC_ACQUIRE) == token) return;
  published_ = token;
  __atomic_store_n(&page_->token, token, __ATOMIC_RELEASE);
  __atomic_add_fetch(&page_->seq, 1, __ATOMIC_RELEASE);
}

// ---- TenantGate ----

void TenantGate::Want(bool want) noexcept {
  wanting_ = want;
  __atomic_store_n(&mine_->want, want ? 1u : 0u, __ATOMIC_RELEASE);
  if (doorbell_ != nullptr) doorbell_->Ring();
}

bool TenantGate::ReleaseRequested() const noexcept {
  const std::uint64_t token = __atomic_load_n(&page_->token, __ATOMIC_ACQUIRE);
  return TokenHolder(token) == id_ && (token & kTokenRelease) != 0;
}

GateDecision TenantGate::BeforeLaunch(std::uint64_t now_ns) noexcept {
  const std::uint64_t token = __atomic_load_n(&page_->token, __ATOMIC_ACQUIRE);
  go_token_ = ~0ULL;  // no fast launches unless this answers kGo to the holder
  const bool handed_back = !holding_ && released_ != 0 &&
                           __atomic_load_n(&page_->grant_id, __ATOMIC_ACQUIRE) == released_;
  if (id_ != kNoTenant && TokenHolder(token) == id_ && !handed_back) {
    if (!holding_) {
      holding_ = true;
      grant_ = __atomic_load_n(&page_->grant_id, __ATOMIC_ACQUIRE);
      launches_ = 0;
      since_drain_ = 0;
      drained_at_ = now_ns;
      wait_since_ = 0;
    }
    if ((token & kTokenRelease) != 0) return GateDecision::kDrainThenRelease;
    const bool contended = TokenWaiters(token) > 0 || (token & kTokenTimed) != 0;
    if (contended && QueuedTooMuch()) return GateDecision::kDrain;
    ++launches_;
    ++since_drain_;
    go_token_ = token;
    return GateDecision::kGo;
  }
  if (holding_) return GateDecision::kDrainThenRelease;  // revoked: report the backlog first
  if (now_ns < bypass_until_) return GateDecision::kGo;
  if (!wanting_) {
    Want(true);
    wait_since_ = now_ns;
  } else if (wait_since_ == 0) {
    wait_since_ = now_ns;
  } else if (now_ns - wait_since_ >= params_.max_wait_ns) {
    // No referee answers (an agent restart, a broken page): run on the hardware's equal turns.
    bypass_until_ = now_ns + params_.bypass_ns;
    wait_since_ = 0;
    return GateDecision::kGo;
  }
  return GateDecision::kWait;
}

// About a turn of this process's work is queued (estimated from its mean time per launch; until
// that is known, kernels_per_turn launches).
bool TenantGate::QueuedTooMuch() const noexcept {
  if (since_drain_ == 0) return false;
  if (mean_launch_ns_ == 0) return since_drain_ >= params_.kernels_per_turn;
  const std::uint64_t turn = __atomic_load_n(&page_->turn_ns, __ATOMIC_ACQUIRE);
  return since_drain_ * mean_launch_ns_ >= (turn != 0 ? turn : params_.min_turn_ns);
}

std::uint64_t TenantGate::LaunchesWithoutCheck() const noexcept {
  const std::uint64_t token = go_token_;
  if (!holding_ || TokenHolder(token) != id_ || (token & kTokenRelease) != 0) return 0;
  if (TokenWaiters(token) == 0 && (token & kTokenTimed) == 0) return kUnboundedLaunches;
  // QueuedTooMuch answers true from since_drain_ == stop on (never at 0).
  std::uint64_t stop = params_.kernels_per_turn;
  if (mean_launch_ns_ != 0) {
    const std::uint64_t turn_ns = __atomic_load_n(&page_->turn_ns, __ATOMIC_ACQUIRE);
    const std::uint64_t turn = turn_ns != 0 ? turn_ns : params_.min_turn_ns;
    stop = (turn + mean_launch_ns_ - 1) / mean_launch_ns_;
  }
  if (stop == 0) stop = 1;
  const std::uint64_t left = stop > since_drain_ ? stop - since_drain_ : 0;
  return left < kUnboundedLaunches ? left : kUnboundedLaunches;
}

void TenantGate::CountLaunches(std::uint64_t launches) noexcept {
  launches_ += launches;
  since_drain_ += launches;
}

void TenantGate::Drained(std::uint64_t completion_ns) noexcept {
  if (since_drain_ > 0 && completion_ns > drained_at_) {
    mean_launch_ns_ = (completion_ns - drained_at_) / since_drain_;
  }
  since_drain_ = 0;
  drained_at_ = completion_ns;
}

void TenantGate::StopWanting() noexcept {
  if (!holding_ && wanting_) Want(false);
  wait_since_ = 0;
}

void TenantGate::Release(std::uint64_t completion_ns, std::uint64_t now_ns,
                         bool wants_more) noexcept {
  if (!holding_) return;
  Drained(completion_ns);
  mine_->completion_ns = completion_ns;
  mine_->launches = launches_;
  wanting_ = wants_more;
  __atomic_store_n(&mine_->want, wants_more ? 1u : 0u, __ATOMIC_RELEASE);
  __atomic_store_n(&mine_->release_grant, grant_, __ATOMIC_RELEASE);  // last: the referee acts
  if (doorbell_ != nullptr) doorbell_->Ring();
  released_ = grant_;
  holding_ = false;
  launches_ = 0;
  wait_since_ = wants_more ? now_ns : 0;
}

}  // namespace gpuslice::shim
