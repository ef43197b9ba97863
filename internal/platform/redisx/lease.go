package redisx

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// A lease is a key holding its holder's random token (taken with SET NX PX): only the
// holder of the token may extend it or delete it, so a holder that paused past the TTL
// never extends or deletes the lease another process has taken since.

var renewLeaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
return 0`)

var releaseLeaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0`)

// RenewLease extends key's lifetime to ttl if it still holds token; false when it does
// not (expired, or taken by another holder).
func RenewLease(ctx context.Context, rdb redis.Scripter, key, token string, ttl time.Duration) (bool, error) {
	n, err := renewLeaseScript.Run(ctx, rdb, []string{key}, token, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("redisx: renew lease %s: %w", key, err)
	}
	return n == 1, nil
}

// ReleaseLease deletes key if it still holds token (someone else's lease is left alone).
func ReleaseLease(ctx context.Context, rdb redis.Scripter, key, token string) error {
	if err := releaseLeaseScript.Run(ctx, rdb, []string{key}, token).Err(); err != nil {
		return fmt.Errorf("redisx: release lease %s: %w", key, err)
	}
	return nil
}
