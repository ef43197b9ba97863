package idempotency

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mallhq/mall/internal/platform/errs"
)

// redisStore keeps the keys in Redis (config idempotency.store: redis): one hash per
// (user, key) with the request hash, the state, the lock token and lock deadline, and once
// final the response, expiring with the key's TTL. Each step is one Lua script, so a step is
// atomic and one round trip, with Redis's clock deciding lock expiry for every replica.
//
// What it trades (ADR 0021): the MySQL store's record is durable; this one is as durable as
// the Redis deployment (AOF). Losing it means a retry runs the handler again, so the routes
// behind the guard keep their own truth in the database: a checkout stores its key
// (order_checkouts.idem_key), a payment reuses the checkout's pending payment, a bid is
// refused once the price has passed it.
type redisStore struct {
	rdb         redis.UniversalClient
	prefix      string
	ttl         time.Duration
	lockTimeout time.Duration
}

// KEYS[1] the key's hash; ARGV: request hash, token, lock ms, ttl ms.
// Returns {"new"}, {"took"}, {"reused"}, {"busy"} or {"stored", status, headers, body}.
var redisAcquire = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HMGET', KEYS[1], 'h', 's', 'lu', 'st', 'hd', 'b')
if not cur[1] then
  redis.call('HSET', KEYS[1], 'h', ARGV[1], 's', '0', 't', ARGV[2], 'lu', now + tonumber(ARGV[3]))
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {'new'}
end
if cur[1] ~= ARGV[1] then return {'reused'} end
if cur[2] == '1' then return {'stored', cur[4], cur[5], cur[6]} end
if tonumber(cur[3]) > now then return {'busy'} end
redis.call('HSET', KEYS[1], 't', ARGV[2], 'lu', now + tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {'took'}
`)

// KEYS[1]; ARGV: token, status, headers, body, ttl ms. 1 = stored, 0 = the lock was lost.
var redisComplete = redis.NewScript(`
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 's', '1', 't', '', 'st', ARGV[2], 'hd', ARGV[3], 'b', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`)

// KEYS[1]; ARGV: token.
var redisRelease = redis.NewScript(`
if redis.call('HGET', KEYS[1], 't') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`)

func (s *redisStore) redisKey(user int64, key string) string {
	return s.prefix + strconv.FormatInt(user, 10) + ":" + key
}

func (s *redisStore) acquire(ctx context.Context, user int64, key string, hash []byte) (lock, *storedResponse, error) {
	lk := lock{user: user, key: key, token: newToken()}
	res, err := redisAcquire.Run(ctx, s.rdb, []string{s.redisKey(user, key)}, hash, lk.token,
		s.lockTimeout.Milliseconds(), s.ttl.Milliseconds()).StringSlice()
	if err != nil || len(res) == 0 {
		return lock{}, nil, fmt.Errorf("idempotency: acquire key: %w", err)
	}
	switch res[0] {
	case "new":
		return lk, nil, nil
	case "took":
		lk.resumed = true
		return lk, nil, nil
	case "reused":
		return lock{}, nil, errs.ErrIdempotencyReused.WithDetail("this Idempotency-Key was used for a different request")
	case "busy":
		return lock{}, nil, errs.ErrIdempotencyBusy.WithDetail("a request with this Idempotency-Key is still in progress")
	case "stored":
		if len(res) != 4 {
			return lock{}, nil, fmt.Errorf("idempotency: stored key has %d fields", len(res))
		}
		status, err := strconv.Atoi(res[1])
		if err != nil {
			return lock{}, nil, fmt.Errorf("idempotency: stored status: %w", err)
		}
		resp := &storedResponse{Status: status, Header: http.Header{}, Body: []byte(res[3])}
		if res[2] != "" {
			if err := json.Unmarshal([]byte(res[2]), &resp.Header); err != nil {
				return lock{}, nil, fmt.Errorf("idempotency: stored headers: %w", err)
			}
		}
		return lock{}, resp, nil
	}
	return lock{}, nil, fmt.Errorf("idempotency: unexpected answer %q", res[0])
}

func (s *redisStore) complete(ctx context.Context, lk lock, r storedResponse) (bool, error) {
	hdr, err := json.Marshal(r.Header)
	if err != nil {
		return false, fmt.Errorf("idempotency: encode headers: %w", err)
	}
	n, err := redisComplete.Run(ctx, s.rdb, []string{s.redisKey(lk.user, lk.key)}, lk.token, r.Status,
		string(hdr), r.Body, s.ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("idempotency: store response: %w", err)
	}
	return n == 1, nil
}

func (s *redisStore) release(ctx context.Context, lk lock) error {
	if err := redisRelease.Run(ctx, s.rdb, []string{s.redisKey(lk.user, lk.key)}, lk.token).Err(); err != nil {
		return fmt.Errorf("idempotency: release key: %w", err)
	}
	return nil
}

// purge has nothing to do: Redis expires the keys.
func (s *redisStore) purge(context.Context) (int64, error) { return 0, nil }
