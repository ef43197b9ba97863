package idempotency

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/platform/config"
)

// useRedisStore makes newServer build the Guard on the Redis store (TestRedisStore).
var useRedisStore bool

// TestRedisStore runs the store-independent contract tests again with keys in Redis: replay,
// reuse, in flight, one execution under concurrency, failures releasing the key, take-over of
// a dead attempt by exactly one request (with Resumed), per-user keys, the body limit.
func TestRedisStore(t *testing.T) {
	useRedisStore = true
	t.Cleanup(func() { useRedisStore = false })
	for name, test := range map[string]func(*testing.T){
		"Replay":             TestReplayReturnsTheStoredResponse,
		"Reuse":              TestDifferentRequestWithTheSameKeyIsRefused,
		"InFlight":           TestSameKeyWhileInFlightIsConflict,
		"KeyRequired":        TestKeyIsRequiredAndBounded,
		"PerUser":            TestKeysAreScopedPerUser,
		"Concurrent":         TestConcurrentRequestsWithOneKeyRunTheHandlerOnce,
		"FailedAttempt":      TestFailedAttemptLetsTheClientRetry,
		"ClientError":        TestClientErrorIsStoredAndReplayed,
		"TakeOver":           TestExpiredLockIsTakenOverByExactlyOne,
		"BodyLimit":          TestRequestBodyOverTheLimitIsRefused,
		"ExpiredKeyIsAbsent": testRedisExpiredKeyIsAbsent,
	} {
		t.Run(name, test)
	}
}

// testRedisExpiredKeyIsAbsent: a key lives its TTL in Redis, then counts as absent.
func testRedisExpiredKeyIsAbsent(t *testing.T) {
	var calls atomic.Int64
	s := newServer(t, config.Idempotency{TTL: 24 * time.Hour}, counting(&calls))
	if r := post(t, s.url+"/api/v1/orders", 42, "old", `{"v":1}`); r.status != http.StatusCreated {
		t.Fatalf("first: %d %s", r.status, r.body)
	}
	k := s.prefix + strconv.FormatInt(42, 10) + ":old"
	ttl, err := s.rdb.PTTL(context.Background(), k).Result()
	if err != nil || ttl < 24*time.Hour-time.Minute {
		t.Fatalf("key lives %v more (%v), want about 24h", ttl, err)
	}
	if err := s.rdb.Del(context.Background(), k).Err(); err != nil { // what expiry does
		t.Fatal(err)
	}
	r := post(t, s.url+"/api/v1/orders", 42, "old", `{"v":2}`)
	if r.status != http.StatusCreated || r.header.Get(HeaderReplayed) != "" || calls.Load() != 2 {
		t.Fatalf("after expiry: %d %s replayed=%q calls=%d", r.status, r.body, r.header.Get(HeaderReplayed), calls.Load())
	}
}
