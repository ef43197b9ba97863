package flashsale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The gate (ADR 0030): per sale, in one Redis hash slot ({fs:<id>}):
//
//	{fs:<id>}:g  hash  left, starts, ends (Unix ms), limit, state (open|closed), q (queued)
//	{fs:<id>}:u  hash  buyer -> units accepted and not given back
//	{fs:<id>}:k  hash  buyer:key -> ticket (an attempt repeated with its key)
//	fs:t:<ticket> the queued ticket (JSON) until the intake records it in MySQL (by ticket
//	              alone: GET /flash-sales/tickets/{id} knows no sale; the scripts therefore
//	              need one Redis primary, not a cluster, like the rest of Mall's Redis use)
//
// Every decision is one script call. Redis is never the truth: the intake checks the
// buyer's limit and takes the units from the stock pool in MySQL, and a lost gate is
// rebuilt from MySQL (load).

func gateKeys(saleID int64) (g, u, k string) {
	p := "{fs:" + strconv.FormatInt(saleID, 10) + "}"
	return p + ":g", p + ":u", p + ":k"
}

func ticketKey(ticketID int64) string { return "fs:t:" + strconv.FormatInt(ticketID, 10) }

// attemptScript: KEYS g, u, k, t; ARGV now_ms, buyer, qty, key, ticket, ticket_json,
// ticket_ttl_s, max_queued. Answers {outcome, ticket?}.
var attemptScript = redis.NewScript(`
local g = redis.call('HMGET', KEYS[1], 'left', 'starts', 'ends', 'limit', 'state', 'q')
if not g[1] then return {'missing'} end
local idem = ARGV[2] .. ':' .. ARGV[4]
local seen = redis.call('HGET', KEYS[3], idem)
if seen then return {'dup', seen} end
local now = tonumber(ARGV[1])
if g[5] ~= 'open' or now < tonumber(g[2]) or now >= tonumber(g[3]) then return {'not_running'} end
local qty = tonumber(ARGV[3])
if tonumber(g[1]) < qty then return {'sold_out'} end
local had = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if had + qty > tonumber(g[4]) then return {'limit'} end
if tonumber(g[6] or '0') >= tonumber(ARGV[8]) then return {'queue_full'} end
redis.call('HINCRBY', KEYS[1], 'left', -qty)
redis.call('HINCRBY', KEYS[1], 'q', 1)
redis.call('HINCRBY', KEYS[2], ARGV[2], qty)
redis.call('HSET', KEYS[3], idem, ARGV[5])
redis.call('SET', KEYS[4], ARGV[6], 'EX', tonumber(ARGV[7]))
return {'ok', ARGV[5]}
`)

// undoScript takes back an accepted attempt whose produce failed. KEYS g, u, k, t; ARGV
// buyer, qty, key.
var undoScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'left', tonumber(ARGV[2]))
if tonumber(redis.call('HGET', KEYS[1], 'q') or '0') > 0 then redis.call('HINCRBY', KEYS[1], 'q', -1) end
local had = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
redis.call('HSET', KEYS[2], ARGV[1], math.max(had - tonumber(ARGV[2]), 0))
redis.call('HDEL', KEYS[3], ARGV[1] .. ':' .. ARGV[3])
redis.call('DEL', KEYS[4])
return 1
`)

// settleScript: the intake took tickets up (q − 1 each); a ticket with give_back > 0
// failed, and its units go back to the sale and the buyer. Once per ticket: only a ticket
// whose key is still there counts (a second settle, or one for a ticket queued before the
// gate was lost and rebuilt from MySQL, whose units the rebuild counted, changes nothing).
// KEYS g, u, then each ticket's key; ARGV buyer, give_back per ticket.
var settleScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  for i = 3, #KEYS do redis.call('DEL', KEYS[i]) end
  return 0
end
local q = tonumber(redis.call('HGET', KEYS[1], 'q') or '0')
for i = 3, #KEYS do
  if redis.call('DEL', KEYS[i]) == 1 then
    if q > 0 then q = q - 1 end
    local j = (i - 3) * 2 + 1
    local n = tonumber(ARGV[j + 1])
    if n > 0 then
      redis.call('HINCRBY', KEYS[1], 'left', n)
      local had = tonumber(redis.call('HGET', KEYS[2], ARGV[j]) or '0')
      redis.call('HSET', KEYS[2], ARGV[j], math.max(had - n, 0))
    end
  end
end
redis.call('HSET', KEYS[1], 'q', q)
return 1
`)

// giveBackScript returns units of a cancelled order to the sale and the buyer. KEYS g, u;
// ARGV buyer, units.
var giveBackScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = tonumber(ARGV[2])
redis.call('HINCRBY', KEYS[1], 'left', n)
local had = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
redis.call('HSET', KEYS[2], ARGV[1], math.max(had - n, 0))
return 1
`)

// loadScript writes a gate unless one exists (replicas rebuilding at once write the same).
// KEYS g, u; ARGV left, starts, ends, limit, state, then buyer, units pairs.
var loadScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'left', ARGV[1], 'starts', ARGV[2], 'ends', ARGV[3], 'limit', ARGV[4], 'state', ARGV[5], 'q', 0)
redis.call('DEL', KEYS[2])
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1
`)

type gate struct {
	rdb redis.UniversalClient
}

// outcome is the gate's answer to an attempt.
type outcome string

const (
	gateOK        outcome = "ok"
	gateDup       outcome = "dup"
	gateMissing   outcome = "missing"
	gateNotRun    outcome = "not_running"
	gateSoldOut   outcome = "sold_out"
	gateLimit     outcome = "limit"
	gateQueueFull outcome = "queue_full"
)

// queuedTicket is the ticket the gate keeps until the intake records it.
type queuedTicket struct {
	ID        int64     `json:"id,string"`
	SaleID    int64     `json:"sale_id,string"`
	BuyerID   int64     `json:"buyer_id,string"`
	Quantity  int64     `json:"quantity"`
	AddressID int64     `json:"address_id,string"`
	CreatedAt time.Time `json:"created_at"`
}

// queuedTTL bounds how long a queued ticket is readable from the gate: far longer than
// any intake backlog; the intake's MySQL row answers after that.
const queuedTTL = 24 * time.Hour

func (g *gate) attempt(ctx context.Context, saleID int64, t queuedTicket, key string, now time.Time, maxQueued int) (outcome, int64, error) {
	gk, uk, kk := gateKeys(saleID)
	tj, err := json.Marshal(t)
	if err != nil {
		return "", 0, err
	}
	res, err := attemptScript.Run(ctx, g.rdb, []string{gk, uk, kk, ticketKey(t.ID)}, now.UnixMilli(), t.BuyerID,
		t.Quantity, key, t.ID, tj, int(queuedTTL.Seconds()), maxQueued).StringSlice()
	if err != nil {
		return "", 0, fmt.Errorf("flashsale: gate: %w", err)
	}
	if len(res) == 0 {
		return "", 0, errors.New("flashsale: gate: empty answer")
	}
	var id int64
	if len(res) > 1 {
		if id, err = strconv.ParseInt(res[1], 10, 64); err != nil {
			return "", 0, fmt.Errorf("flashsale: gate: ticket %q: %w", res[1], err)
		}
	}
	return outcome(res[0]), id, nil
}

func (g *gate) undo(ctx context.Context, saleID int64, t queuedTicket, key string) error {
	gk, uk, kk := gateKeys(saleID)
	return undoScript.Run(ctx, g.rdb, []string{gk, uk, kk, ticketKey(t.ID)}, t.BuyerID, t.Quantity, key).Err()
}

// settlement is one ticket the intake took up: giveBack units return to the gate (a
// failed ticket's).
type settlement struct{ ticketID, buyerID, giveBack int64 }

func (g *gate) settle(ctx context.Context, saleID int64, ts []settlement) error {
	if len(ts) == 0 {
		return nil
	}
	gk, uk, _ := gateKeys(saleID)
	keys := make([]string, 0, len(ts)+2)
	keys = append(keys, gk, uk)
	args := make([]any, 0, 2*len(ts))
	for _, t := range ts {
		keys = append(keys, ticketKey(t.ticketID))
		args = append(args, t.buyerID, t.giveBack)
	}
	return settleScript.Run(ctx, g.rdb, keys, args...).Err()
}

func (g *gate) giveBack(ctx context.Context, saleID, buyerID, units int64) error {
	gk, uk, _ := gateKeys(saleID)
	return giveBackScript.Run(ctx, g.rdb, []string{gk, uk}, buyerID, units).Err()
}

// load writes the sale's gate unless one exists.
func (g *gate) load(ctx context.Context, saleID, left int64, starts, ends time.Time, limit int, open bool, holdings map[int64]int64) error {
	gk, uk, _ := gateKeys(saleID)
	state := "closed"
	if open {
		state = "open"
	}
	args := []any{max(left, 0), starts.UnixMilli(), ends.UnixMilli(), limit, state}
	for buyer, n := range holdings {
		args = append(args, buyer, n)
	}
	return loadScript.Run(ctx, g.rdb, []string{gk, uk}, args...).Err()
}

// close marks the gate closed (cancelled or ended): every attempt is refused.
func (g *gate) close(ctx context.Context, saleID int64) error {
	gk, _, _ := gateKeys(saleID)
	return g.rdb.HSet(ctx, gk, "state", "closed").Err()
}

// left is the gate's units left; ok false when there is no gate.
func (g *gate) left(ctx context.Context, saleID int64) (int64, bool, error) {
	gk, _, _ := gateKeys(saleID)
	v, err := g.rdb.HGet(ctx, gk, "left").Int64()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	return v, err == nil, err
}

// queued is the ticket the gate holds for the intake; ok false when it holds none.
func (g *gate) queued(ctx context.Context, ticketID int64) (queuedTicket, bool, error) {
	b, err := g.rdb.Get(ctx, ticketKey(ticketID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return queuedTicket{}, false, nil
	}
	if err != nil {
		return queuedTicket{}, false, err
	}
	var t queuedTicket
	if err := json.Unmarshal(b, &t); err != nil {
		return queuedTicket{}, false, err
	}
	return t, true, nil
}
