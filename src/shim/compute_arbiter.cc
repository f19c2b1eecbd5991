#include "shim/compute_arbiter.h"

#include <cstring>

namespace gpuslice::shim {
namespace {

constexpr std::uint32_t S(TenantState s) { return static_cast<std::uint32_t>(s); }

std::uint64_t Token(const ArbiterLayout* t) {
  return __atomic_load_n(&t->header.token, __ATOMIC_ACQUIRE);
}
void SetToken(ArbiterLayout* t, std::uint32_t holder, std::uint32_t waiters) {
  __atomic_store_n(&t->header.token, PackToken(holder, waiters), __ATOMIC_RELEASE);
}
bool Valid(std::uint32_t tenant) { return tenant < kArbiterTenants; }

// Starts charging `tenant` (a holder that others now wait for) from `now_ns`.
void StartCharging(ArbiterTenant& t, std::uint64_t now_ns) {
  t.charging = 1;
  t.charged_until = now_ns;
}

// Charges `t` its GPU time up to `until_ns` (once per interval; only while it is charging).
void Charge(ArbiterTenant& t, std::uint64_t until_ns) {
  if (t.charging == 0 || until_ns <= t.charged_until) return;
  const std::uint64_t ns = until_ns - t.charged_until;
  t.charged_until = until_ns;
  t.charged_ns += ns;
  const std::uint64_t weight = t.weight == 0 ? 1 : t.weight;
  t.vtime += ns * 100 / weight;
}

// The smallest virtual time among waiting or holding tenants other than `except`, or
// UINT64_MAX when there is none.
std::uint64_t MinActiveVtime(const ArbiterLayout* t, std::uint32_t except) {
  std::uint64_t best = UINT64_MAX;
  for (std::uint32_t i = 0; i < kArbiterTenants; ++i) {
    const std::uint32_t s = t->tenants[i].state;
    if (i != except && (s == S(TenantState::kWaiting) || s == S(TenantState::kHolding)) &&
        t->tenants[i].vtime < best) {
      best = t->tenants[i].vtime;
    }
  }
  return best;
}

std::uint64_t TurnFor(const ArbiterTenant& t, const ArbiterParams& p) {
  std::uint64_t turn = t.mean_kernel_ns * p.kernels_per_turn;
  if (turn < p.min_turn_ns) turn = p.min_turn_ns;
  if (turn > p.max_turn_ns) turn = p.max_turn_ns;
  return turn;
}

// Frees the records of dead tenants that are not the holder; returns the live waiters.
std::uint32_t CountLiveWaiters(ArbiterLayout* t, TenantLiveness* liveness) {
  std::uint32_t waiters = 0;
  for (std::uint32_t i = 0; i < kArbiterTenants; ++i) {
    ArbiterTenant& r = t->tenants[i];
    if (r.state != S(TenantState::kWaiting)) continue;
    if (liveness != nullptr && !liveness->Alive(i)) {
      __atomic_store_n(&r.state, S(TenantState::kFree), __ATOMIC_RELEASE);
      continue;
    }
    ++waiters;
  }
  return waiters;
}

// Gives the token to the waiter with the least virtual time (lowest index on a tie), or to
// nobody when none waits.
void GrantNext(ArbiterLayout* t, std::uint64_t now_ns, const ArbiterParams& p,
               TenantLiveness* liveness) {
  std::uint32_t waiters = CountLiveWaiters(t, liveness);
  std::uint32_t chosen = kNoTenant;
  for (std::uint32_t i = 0; i < kArbiterTenants; ++i) {
    const ArbiterTenant& r = t->tenants[i];
    if (r.state == S(TenantState::kWaiting) &&
        (chosen == kNoTenant || r.vtime < t->tenants[chosen].vtime)) {
      chosen = i;
    }
  }
  if (chosen == kNoTenant) {
    SetToken(t, kNoTenant, 0);
    return;
  }
  --waiters;
  ArbiterTenant& r = t->tenants[chosen];
  r.state = S(TenantState::kHolding);
  r.charging = 0;
  if (waiters > 0) StartCharging(r, now_ns);
  t->header.grant_ns = now_ns;
  t->header.turn_ns = TurnFor(r, p);
  ++t->header.grants;
  SetToken(t, chosen, waiters);
}

// Takes the token from `holder` (past its turn and lease, or dead): charged up to now.
void Revoke(ArbiterLayout* t, std::uint32_t holder, std::uint64_t now_ns, bool dead) {
  ArbiterTenant& r = t->tenants[holder];
  Charge(r, now_ns);
  r.charging = 0;
  __atomic_store_n(&r.state, dead ? S(TenantState::kFree) : S(TenantState::kIdle),
                   __ATOMIC_RELEASE);
}

}  // namespace

void InitArbiterTable(ArbiterLayout* table) noexcept {
  std::memset(static_cast<void*>(table->tenants), 0, sizeof(table->tenants));
  table->header.grant_ns = 0;
  table->header.turn_ns = 0;
  table->header.grants = 0;
  SetToken(table, kNoTenant, 0);
}

bool JoinTenantAt(ArbiterLayout* table, std::uint32_t index, std::uint32_t weight,
                  std::int32_t pid) noexcept {
  if (!Valid(index)) return false;
  ArbiterTenant& r = table->tenants[index];
  if (r.state != S(TenantState::kFree)) return false;
  std::memset(static_cast<void*>(&r), 0, sizeof(r));
  r.weight = weight < 1 ? 1 : (weight > 100 ? 100 : weight);
  r.pid = pid;
  __atomic_store_n(&r.state, S(TenantState::kIdle), __ATOMIC_RELEASE);
  return true;
}

std::uint32_t JoinTenant(ArbiterLayout* table, std::uint32_t weight, std::int32_t pid) noexcept {
  for (std::uint32_t i = 0; i < kArbiterTenants; ++i) {
    if (JoinTenantAt(table, i, weight, pid)) return i;
  }
  return kNoTenant;
}

void LeaveTenant(ArbiterLayout* table, std::uint32_t tenant, std::uint64_t now_ns,
                 const ArbiterParams& params, TenantLiveness* liveness) noexcept {
  if (!Valid(tenant)) return;
  const bool held = TokenHolder(Token(table)) == tenant;
  __atomic_store_n(&table->tenants[tenant].state, S(TenantState::kFree), __ATOMIC_RELEASE);
  if (held) {
    GrantNext(table, now_ns, params, liveness);
  } else {
    const std::uint64_t token = Token(table);
    SetToken(table, TokenHolder(token), CountLiveWaiters(table, liveness));
  }
}

bool AcquireToken(ArbiterLayout* table, std::uint32_t tenant, std::uint64_t now_ns,
                  const ArbiterParams& params, TenantLiveness* liveness) noexcept {
  if (!Valid(tenant)) return false;
  ArbiterTenant& me = table->tenants[tenant];
  std::uint32_t holder = TokenHolder(Token(table));
  if (holder == tenant) return true;
  if (me.state != S(TenantState::kWaiting)) {
    // Waking: no credit banked while idle.
    const std::uint64_t floor = MinActiveVtime(table, tenant);
    if (floor != UINT64_MAX && me.vtime < floor) me.vtime = floor;
    me.state = S(TenantState::kWaiting);
  }
  if (Valid(holder)) {
    ArbiterTenant& h = table->tenants[holder];
    const bool dead = liveness != nullptr && !liveness->Alive(holder);
    if (!dead && h.charging == 0) {
      // Contention begins: the holder's turn (and its charge) starts now, not at its grant.
      StartCharging(h, now_ns);
      table->header.grant_ns = now_ns;
    } else if (dead || now_ns > table->header.grant_ns + table->header.turn_ns + params.lease_ns) {
      Revoke(table, holder, now_ns, dead);
      holder = kNoTenant;
    }
  }
  if (!Valid(holder)) {
    GrantNext(table, now_ns, params, liveness);
  } else {
    SetToken(table, holder, CountLiveWaiters(table, liveness));
  }
  return TokenHolder(Token(table)) == tenant;
}

bool TurnOver(const ArbiterLayout* table, std::uint32_t tenant, std::uint64_t now_ns) noexcept {
  const std::uint64_t token = Token(table);
  return TokenHolder(token) == tenant && TokenWaiters(token) > 0 &&
         now_ns >= table->header.grant_ns + table->header.turn_ns;
}

void ReleaseToken(ArbiterLayout* table, std::uint32_t tenant, std::uint64_t completion_ns,
                  std::uint64_t launches, bool wants_more, std::uint64_t now_ns,
                  const ArbiterParams& params, TenantLiveness* liveness) noexcept {
  if (!Valid(tenant)) return;
  ArbiterTenant& me = table->tenants[tenant];
  const bool held = TokenHolder(Token(table)) == tenant;
  // A revoked holder's backlog past the revocation is still its own: charged as debt.
  if (!held) me.charging = me.charging != 0 || completion_ns > me.charged_until ? 1 : 0;
  const std::uint64_t before = me.charged_ns;
  Charge(me, completion_ns);
  me.charging = 0;
  const std::uint64_t turn_ns = me.charged_ns - before;
  if (launches > 0 && turn_ns > 0) me.mean_kernel_ns = turn_ns / launches;
  if (held) {
    me.state = wants_more ? S(TenantState::kWaiting) : S(TenantState::kIdle);
    GrantNext(table, now_ns, params, liveness);
  } else if (me.state != S(TenantState::kFree)) {
    me.state = S(TenantState::kIdle);
    if (wants_more) AcquireToken(table, tenant, now_ns, params, liveness);
  }
}

// ---- TenantGate ----

GateDecision TenantGate::BeforeLaunch(std::uint64_t now_ns) noexcept {
  if (holding_ && cap_percent_ == 0 && Alone()) return GateDecision::kGo;
  if (now_ns < bypass_until_) return GateDecision::kGo;
  if (!holding_ && now_ns < cap_resume_ns_) return GateDecision::kWait;
  ArbiterLayout* t = access_->table();
  access_->Lock();
  GateDecision decision = GateDecision::kWait;
  const std::uint32_t holder = TokenHolder(Token(t));
  if (holding_ && holder != tenant_) {
    decision = GateDecision::kDrainThenRelease;  // revoked: account for the backlog first
  } else if (holding_) {
    const bool cap_turn_over = cap_percent_ != 0 && now_ns >= held_since_ + t->header.turn_ns;
    decision = TurnOver(t, tenant_, now_ns) || cap_turn_over ? GateDecision::kDrainThenRelease
                                                             : GateDecision::kGo;
  } else if (AcquireToken(t, tenant_, now_ns, params_, access_)) {
    holding_ = true;
    launches_ = 0;
    held_since_ = now_ns;
    wait_since_ = 0;
    decision = GateDecision::kGo;
  } else if (wait_since_ == 0) {
    wait_since_ = now_ns;
  } else if (now_ns - wait_since_ >= params_.max_wait_ns) {
    // Nobody honest keeps a tenant waiting this long: the table has been tampered with.
    bypass_until_ = now_ns + params_.bypass_ns;
    wait_since_ = 0;
    decision = GateDecision::kGo;
  }
  if (decision == GateDecision::kGo && holding_) ++launches_;
  access_->Unlock();
  return decision;
}

void TenantGate::Release(std::uint64_t completion_ns, std::uint64_t now_ns,
                         bool wants_more) noexcept {
  if (!holding_) return;
  if (cap_percent_ != 0) {
    // Off for as long as the turn ran x (100 - cap) / cap.
    const std::uint64_t busy = completion_ns > held_since_ ? completion_ns - held_since_ : 0;
    cap_resume_ns_ = completion_ns + busy * (100 - cap_percent_) / cap_percent_;
    wants_more = false;  // it waits off the table, not in the queue
  }
  access_->Lock();
  ReleaseToken(access_->table(), tenant_, completion_ns, launches_, wants_more, now_ns, params_,
               access_);
  holding_ = TokenHolder(Token(access_->table())) == tenant_;
  if (holding_) held_since_ = now_ns;
  launches_ = 0;
  access_->Unlock();
}

}  // namespace gpuslice::shim
