package redisx_test

import (
	"context"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/platform/redisx"
	"github.com/mallhq/mall/internal/platform/redisx/redisxtest"
)

func TestLeaseIsRenewedAndReleasedOnlyByItsHolder(t *testing.T) {
	ctx := context.Background()
	rdb := redisxtest.Client(t)
	key := redisxtest.Prefix(t) + "lease"
	if err := rdb.Set(ctx, key, "mine", time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	defer rdb.Del(ctx, key)

	if ok, err := redisx.RenewLease(ctx, rdb, key, "theirs", time.Minute); err != nil || ok {
		t.Fatalf("RenewLease with another token = %v, %v; want false, nil", ok, err)
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl > time.Second {
		t.Fatalf("another token extended the lease to %s", ttl)
	}
	if ok, err := redisx.RenewLease(ctx, rdb, key, "mine", time.Minute); err != nil || !ok {
		t.Fatalf("RenewLease by the holder = %v, %v; want true, nil", ok, err)
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl < 50*time.Second {
		t.Fatalf("the holder's renewal left a TTL of %s, want about 1m", ttl)
	}

	if err := redisx.ReleaseLease(ctx, rdb, key, "theirs"); err != nil {
		t.Fatal(err)
	}
	if rdb.Exists(ctx, key).Val() != 1 {
		t.Fatal("another token released the lease")
	}
	if err := redisx.ReleaseLease(ctx, rdb, key, "mine"); err != nil {
		t.Fatal(err)
	}
	if rdb.Exists(ctx, key).Val() != 0 {
		t.Fatal("the holder's release left the key")
	}
	if ok, err := redisx.RenewLease(ctx, rdb, key, "mine", time.Minute); err != nil || ok {
		t.Fatalf("RenewLease of a released lease = %v, %v; want false, nil", ok, err)
	}
}
