package user

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mallhq/mall/internal/platform/ratelimit"
)

// loginGuard limits failed password logins. Three counters, each in a window that starts
// at its first failure (auth.login.window):
//
//   - per (account, client network): a person mistyping, or one attacker on one account.
//     After free_failures each further attempt waits delay_base, doubling up to delay_max;
//     at max_failures_per_account_ip the pair is refused until the window ends.
//   - per client network, over all accounts (password spraying): max_failures_per_ip.
//     Skipped for ratelimit.trusted_clients.
//   - per account from networks it has not logged in from recently (distributed guessing):
//     max_failures_per_account. A network the account logged in from within known_ip_ttl is
//     "usual": attempts from it neither count nor are refused by this counter, so attackers
//     elsewhere cannot lock the owner out of their usual address.
//
// An attempt is reserved before the password hash is computed: one Lua script checks every
// counter, the delay, and increments them all, atomically, so N parallel guesses pass at
// most as many as the limits allow. A success settles the reservation (the pair's counter
// is cleared, the others get their unit back, the network becomes usual); an attempt that
// ends in an error (database, hashing busy) is refunded; a wrong password keeps it.
//
// Client networks are ratelimit.ClientKey (IPv6 by /64). All keys share one Redis Cluster
// hash slot ({mall:login}) so one script can touch them.
type loginGuard struct {
	rdb     redis.UniversalClient
	gate    *redisGate
	cfg     loginLimits
	trusted func(ip string) bool
	local   localGuard
}

// loginLimits are auth.login.* (see Config).
type loginLimits struct {
	Window                  time.Duration
	MaxFailuresPerAccountIP int
	MaxFailuresPerIP        int
	MaxFailuresPerAccount   int
	FreeFailures            int
	DelayBase, DelayMax     time.Duration
	KnownIPTTL              time.Duration
}

func newLoginGuard(rdb redis.UniversalClient, log *slog.Logger, lim loginLimits, trusted func(string) bool) *loginGuard {
	if trusted == nil {
		trusted = func(string) bool { return false }
	}
	return &loginGuard{rdb: rdb, gate: newRedisGate(log, "login failure counters"), cfg: lim, trusted: trusted,
		local: localGuard{m: map[string]*failCount{}, known: map[string]time.Time{}}}
}

// loginTicket is one reserved attempt.
type loginTicket struct {
	pairKey, ipKey, acctKey, knownKey string
	useIP, known                      bool
	redis                             bool // reserved in Redis (else in process only)
}

const loginKeyPrefix = redisPrefix + "{mall:login}:"

func loginKeys(email, ip string) (pair, ipk, acct, known string) {
	h := sha256.Sum256([]byte(email)) // Redis holds no addresses
	a := hex.EncodeToString(h[:16])
	n := ratelimit.ClientKey(ip)
	return loginKeyPrefix + "pair:" + a + ":" + n, loginKeyPrefix + "ip:" + n, loginKeyPrefix + "acct:" + a,
		loginKeyPrefix + "known:" + a + ":" + n
}

// reserveScript: KEYS pair, ip, acct, known; ARGV window_ms, max_pair, max_ip, max_acct,
// free, delay_base_ms, delay_max_ms, use_ip. Returns {1, known} when reserved, {0, wait_ms}
// when refused.
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, maxPair, maxIP, maxAcct = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local free, base, cap, useIP = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8] == '1'
local known = redis.call('EXISTS', KEYS[4]) == 1
local wait = 0
local function over(k, limit)
  local n = tonumber(redis.call('HGET', k, 'n') or '0')
  if n >= limit then
    local ttl = redis.call('PTTL', k)
    if ttl < 1 then ttl = 1 end
    if ttl > wait then wait = ttl end
  end
end
over(KEYS[1], maxPair)
local nextAt = tonumber(redis.call('HGET', KEYS[1], 'next') or '0')
if nextAt - now > wait then wait = nextAt - now end
if useIP then over(KEYS[2], maxIP) end
if not known then over(KEYS[3], maxAcct) end
if wait > 0 then return {0, wait} end
local function incr(k)
  local n = redis.call('HINCRBY', k, 'n', 1)
  if n == 1 then redis.call('PEXPIRE', k, window) end
  return n
end
local n = incr(KEYS[1])
if n >= free then
  local d = base * math.pow(2, n - free)
  if d > cap then d = cap end
  redis.call('HSET', KEYS[1], 'next', now + d)
end
if useIP then incr(KEYS[2]) end
if not known then incr(KEYS[3]) end
if known then return {1, 1} end
return {1, 0}`)

// settleScript: KEYS pair, ip, acct, known; ARGV success, use_ip, counted_acct, known_ttl_ms.
// success: the pair is cleared and the network becomes usual; otherwise the pair gets its
// unit back too (a refund; the delay it set stays, so a refund never allows more). ip and
// acct get their units back either way.
var settleScript = redis.NewScript(`
local function refund(k)
  if redis.call('EXISTS', k) == 1 and tonumber(redis.call('HGET', k, 'n') or '0') > 0 then
    redis.call('HINCRBY', k, 'n', -1)
  end
end
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[4], '1', 'PX', ARGV[4])
else
  refund(KEYS[1])
end
if ARGV[2] == '1' then refund(KEYS[2]) end
if ARGV[3] == '1' then refund(KEYS[3]) end
return 1`)

// reserve takes one attempt for (email, ip), or returns ErrTooManyAttempts with Retry-After.
func (g *loginGuard) reserve(ctx context.Context, email, ip string) (loginTicket, error) {
	pair, ipk, acct, known := loginKeys(email, ip)
	t := loginTicket{pairKey: pair, ipKey: ipk, acctKey: acct, knownKey: known, useIP: !g.trusted(ip)}
	c := g.cfg
	if g.gate.up() {
		res, err := reserveScript.Run(ctx, g.rdb, []string{pair, ipk, acct, known},
			c.Window.Milliseconds(), c.MaxFailuresPerAccountIP, c.MaxFailuresPerIP, c.MaxFailuresPerAccount,
			c.FreeFailures, c.DelayBase.Milliseconds(), c.DelayMax.Milliseconds(), boolArg(t.useIP)).Int64Slice()
		if err == nil && len(res) == 2 {
			if res[0] == 0 {
				return t, tooMany(time.Duration(res[1]) * time.Millisecond)
			}
			t.redis, t.known = true, res[1] == 1
			g.local.mirror(t, c, time.Now()) // so an outage starts from what this replica saw
			return t, nil
		}
		if err == nil {
			err = errors.New("unexpected script reply")
		}
		if ctx.Err() != nil {
			return t, ctx.Err()
		}
		g.gate.failed(err)
	}
	var wait time.Duration
	t.known, wait = g.local.reserve(t, c, time.Now())
	if wait > 0 {
		return t, tooMany(wait)
	}
	return t, nil
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// succeed settles t as a successful login.
func (g *loginGuard) succeed(ctx context.Context, t loginTicket) { g.settle(ctx, t, true) }

// refund gives t back: the attempt ended before a verdict on the password.
func (g *loginGuard) refund(ctx context.Context, t loginTicket) { g.settle(ctx, t, false) }

func (g *loginGuard) settle(ctx context.Context, t loginTicket, success bool) {
	g.local.settle(t, success, g.cfg, time.Now())
	if !t.redis || !g.gate.up() {
		return
	}
	// Not the request's context: a client hanging up after its login must not leave the
	// reservation standing.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	err := settleScript.Run(ctx, g.rdb, []string{t.pairKey, t.ipKey, t.acctKey, t.knownKey},
		boolArg(success), boolArg(t.useIP), boolArg(!t.known), g.cfg.KnownIPTTL.Milliseconds()).Err()
	if err != nil {
		g.gate.failed(err)
	}
}

func tooMany(wait time.Duration) error {
	secs := max(int((wait+time.Second-1)/time.Second), 1)
	return ErrTooManyAttempts.WithRetryAfter(secs).WithDetail("too many failed logins; retry in %d s", secs)
}

// localGuard is the same state in process: it decides while Redis is unreachable and
// mirrors this replica's reservations while it is not.
type localGuard struct {
	mu    sync.Mutex
	m     map[string]*failCount
	known map[string]time.Time
}

type failCount struct {
	n     int
	next  time.Time
	until time.Time
}

func (l *localGuard) get(k string, now time.Time) *failCount {
	if c := l.m[k]; c != nil && now.Before(c.until) {
		return c
	}
	return nil
}

func (l *localGuard) incr(k string, window time.Duration, now time.Time) *failCount {
	c := l.get(k, now)
	if c == nil {
		l.evict(now)
		c = &failCount{until: now.Add(window)}
		l.m[k] = c
	}
	c.n++
	return c
}

func (l *localGuard) isKnown(k string, now time.Time) bool {
	t, ok := l.known[k]
	return ok && now.Before(t)
}

// reserve mirrors reserveScript.
func (l *localGuard) reserve(t loginTicket, c loginLimits, now time.Time) (known bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	known = l.isKnown(t.knownKey, now)
	over := func(k string, limit int) {
		if fc := l.get(k, now); fc != nil && fc.n >= limit {
			wait = max(wait, fc.until.Sub(now))
		}
	}
	over(t.pairKey, c.MaxFailuresPerAccountIP)
	if fc := l.get(t.pairKey, now); fc != nil && fc.next.After(now) {
		wait = max(wait, fc.next.Sub(now))
	}
	if t.useIP {
		over(t.ipKey, c.MaxFailuresPerIP)
	}
	if !known {
		over(t.acctKey, c.MaxFailuresPerAccount)
	}
	if wait > 0 {
		return known, wait
	}
	l.count(t, known, c, now)
	return known, 0
}

// mirror counts a reservation Redis granted, without deciding.
func (l *localGuard) mirror(t loginTicket, c loginLimits, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count(t, t.known, c, now)
}

func (l *localGuard) count(t loginTicket, known bool, c loginLimits, now time.Time) {
	p := l.incr(t.pairKey, c.Window, now)
	if p.n >= c.FreeFailures {
		d := c.DelayBase << min(p.n-c.FreeFailures, 30)
		if d > c.DelayMax || d <= 0 {
			d = c.DelayMax
		}
		p.next = now.Add(d)
	}
	if t.useIP {
		l.incr(t.ipKey, c.Window, now)
	}
	if !known {
		l.incr(t.acctKey, c.Window, now)
	}
}

func (l *localGuard) settle(t loginTicket, success bool, c loginLimits, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	refund := func(k string) {
		if fc := l.get(k, now); fc != nil && fc.n > 0 {
			fc.n--
		}
	}
	if success {
		delete(l.m, t.pairKey)
		if len(l.known) >= localMaxKeys {
			for k := range l.known {
				if len(l.known) < localMaxKeys*9/10 {
					break
				}
				// Full: drop arbitrary entries (an owner then counts as from a new network).
				delete(l.known, k)
			}
		}
		l.known[t.knownKey] = now.Add(c.KnownIPTTL)
	} else {
		refund(t.pairKey) // the delay it set stays: refunds never allow more
	}
	if t.useIP {
		refund(t.ipKey)
	}
	if !t.known {
		refund(t.acctKey)
	}
}

// evict keeps the table under localMaxKeys: expired entries first, then arbitrary ones.
// Caller holds l.mu.
func (l *localGuard) evict(now time.Time) {
	if len(l.m) < localMaxKeys {
		return
	}
	for k, c := range l.m {
		if now.After(c.until) {
			delete(l.m, k)
		}
	}
	for k := range l.m {
		if len(l.m) < localMaxKeys {
			break
		}
		delete(l.m, k)
	}
}
