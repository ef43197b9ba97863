package auction

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// gate is the Redis pre-filter of bids: one hash per lot with the hot state (status,
// start, end, price, increments, version). It turns away a bid that is already too low or
// outside the lot's time without touching MySQL. The database stays authoritative, so the
// gate may only be more lenient than MySQL: its price is written after the commit that set
// it, and only when its version is newer (it can lag, never lead); an end extension is
// written before its commit (the gate's end can only be later than MySQL's); it ends the lot
// only after the end committed. A lost hash is rebuilt from MySQL on the next bid.
type gate struct {
	rdb redis.UniversalClient
	// grace keeps a lot open in the gate a little past its end, for extensions whose gate
	// write lost a race with a rebuild.
	grace time.Duration
}

func gateKey(id int64) string { return "auction:gate:{" + strconv.FormatInt(id, 10) + "}" }

// verdicts of the check script.
const (
	gateOK    = "ok"
	gateMiss  = "miss"
	gateLate  = "not_running"
	gateOwn   = "own"
	gateLowPx = "low:"
)

var checkScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'ver', 'st', 'sp', 'inc', 'lad', 'price', 'cnt', 'starts', 'ends', 'mer')
if not h[1] then return 'miss' end
if h[2] == 'ended' then return 'not_running' end
local now = tonumber(ARGV[2])
if now < tonumber(h[8]) or now >= tonumber(h[9]) + tonumber(ARGV[4]) then return 'not_running' end
if ARGV[3] ~= '0' and ARGV[3] == h[10] then return 'own' end
local minNext
if tonumber(h[7]) == 0 then
  minNext = tonumber(h[3])
else
  local p = tonumber(h[6])
  local inc = tonumber(h[4])
  for from, i in string.gmatch(h[5], '(%d+):(%d+)') do
    if p >= tonumber(from) then inc = tonumber(i) end
  end
  minNext = p + inc
end
if tonumber(ARGV[1]) < minNext then return 'low:' .. string.format('%d', minNext) end
return 'ok'
`)

// setScript replaces the hash when the version is newer than the one it holds.
var setScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], 'ver')
if v and tonumber(v) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'ver', ARGV[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// raiseEndScript moves the end later (never earlier) in an existing hash.
var raiseEndScript = redis.NewScript(`
local e = redis.call('HGET', KEYS[1], 'ends')
if e and tonumber(e) < tonumber(ARGV[1]) then redis.call('HSET', KEYS[1], 'ends', ARGV[1]) return 1 end
return 0
`)

// check asks the gate about a bid; the verdict gateMiss means the lot is not in Redis.
func (g *gate) check(ctx context.Context, lotID, amount, bidderMerchant int64, now time.Time) (string, error) {
	return checkScript.Run(ctx, g.rdb, []string{gateKey(lotID)}, amount, now.UnixMilli(), bidderMerchant,
		g.grace.Milliseconds()).Text()
}

func ladderString(b []Band) string {
	var sb strings.Builder
	for i, x := range b {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.FormatInt(x.From, 10) + ":" + strconv.FormatInt(x.Increment, 10))
	}
	return sb.String()
}

// set writes the lot's state when it is newer than the gate's.
func (g *gate) set(ctx context.Context, l Lot, now time.Time) error {
	ttl := max(l.EndsAt.Sub(now), 0) + time.Hour
	return setScript.Run(ctx, g.rdb, []string{gateKey(l.ID)}, l.Version, ttl.Milliseconds(),
		"st", string(l.Status), "sp", l.StartPrice, "inc", l.Increment, "lad", ladderString(l.Ladder),
		"price", l.CurrentPrice, "cnt", l.BidCount, "starts", l.StartsAt.UnixMilli(), "ends", l.EndsAt.UnixMilli(),
		"mer", l.MerchantID).Err()
}

func (g *gate) raiseEnd(ctx context.Context, id int64, ends time.Time) error {
	return raiseEndScript.Run(ctx, g.rdb, []string{gateKey(id)}, ends.UnixMilli()).Err()
}

// verdict maps a check result to the error MySQL would also answer.
func verdict(v string) (pass bool, err error) {
	switch {
	case v == gateOK || v == gateMiss:
		return true, nil
	case v == gateLate:
		return false, ErrNotRunning
	case v == gateOwn:
		return false, ErrOwnAuction
	case strings.HasPrefix(v, gateLowPx):
		return false, ErrBidTooLow.WithDetail("the lowest acceptable bid is %s", strings.TrimPrefix(v, gateLowPx))
	}
	return true, errors.New("auction: unknown gate verdict " + v)
}
