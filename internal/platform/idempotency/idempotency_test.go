package idempotency

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/redisx/redisxtest"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/sqldb/sqldbtest"
	"github.com/mallhq/mall/internal/platform/worker"
	"github.com/redis/go-redis/v9"
)

const testUserHeader = "X-Test-User"

// server is an echo app with Mall's error handler, a stand-in for the authentication
// middleware (X-Test-User carries the user ID) and a recover step like httpx's.
type server struct {
	url   string
	db    *sqldb.DB
	guard *Guard
	// With the Redis store (redis_store_test.go): the client and the key prefix.
	rdb    redis.UniversalClient
	prefix string
}

func newServer(t *testing.T, cfg config.Idempotency, h echo.HandlerFunc, opts ...Option) *server {
	t.Helper()
	return newServerWith(t, cfg, h, nil, opts...)
}

// newServerWith adds outer middleware (run before authentication and the guard).
func newServerWith(t *testing.T, cfg config.Idempotency, h echo.HandlerFunc, outer []echo.MiddlewareFunc, opts ...Option) *server {
	t.Helper()
	cl, _ := sqldbtest.NewCluster(t, sqldbtest.Options{MaxOpenConns: 120})
	g := New(cl.Main(), cfg, slog.New(slog.DiscardHandler), opts...)
	var rdb redis.UniversalClient
	var prefix string
	if useRedisStore {
		rdb, prefix = redisxtest.Client(t), redisxtest.Prefix(t)
		g = NewRedis(rdb, prefix, cfg, slog.New(slog.DiscardHandler), opts...)
	}
	e := echo.New()
	e.HTTPErrorHandler = httpx.ErrorHandler(slog.New(slog.DiscardHandler))
	e.Use(outer...)
	e.Use(recoverToError, fakeAuthn)
	e.POST("/api/v1/orders", h, g.Middleware())
	e.POST("/api/v1/auctions/:id/bids", h, g.Middleware())
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return &server{url: srv.URL, db: cl.Main(), guard: g, rdb: rdb, prefix: prefix}
}

func fakeAuthn(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s := c.Request().Header.Get(testUserHeader); s != "" {
			id, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return err
			}
			req := c.Request()
			c.SetRequest(req.WithContext(authn.With(req.Context(), authn.Principal{UserID: id})))
		}
		return next(c)
	}
}

func recoverToError(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return next(c)
	}
}

// counting answers 201 with the execution number and the body it read, plus a Location
// and an X- header, so a replay can be told from a second execution.
func counting(calls *atomic.Int64) echo.HandlerFunc {
	return func(c echo.Context) error {
		n := calls.Add(1)
		b, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		c.Response().Header().Set(echo.HeaderLocation, "/api/v1/orders/"+strconv.FormatInt(n, 10))
		c.Response().Header().Set("X-Order-Seq", strconv.FormatInt(n, 10))
		return c.JSONBlob(http.StatusCreated, fmt.Appendf(nil, `{"execution":%d,"request":%q}`, n, b))
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) code() string {
	var p struct{ Code string }
	_ = json.Unmarshal(r.body, &p)
	return p.Code
}

// testClient bounds every request, so a broken guard fails the test instead of hanging it.
var testClient = &http.Client{Timeout: 15 * time.Second}

func post(t testing.TB, url string, user int64, key, body string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	if key != "" {
		req.Header.Set(HeaderKey, key)
	}
	if user != 0 {
		req.Header.Set(testUserHeader, strconv.FormatInt(user, 10))
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Error(err) // Error, not Fatal: also called from goroutines
		return response{}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Error(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func TestReplayReturnsTheStoredResponse(t *testing.T) {
	var calls atomic.Int64
	s := newServer(t, config.Idempotency{}, counting(&calls))
	body := `{"items":[{"sku_id":"7","quantity":2}],"address_id":"9"}`

	first := post(t, s.url+"/api/v1/orders", 42, "order-1", body)
	if first.status != http.StatusCreated {
		t.Fatalf("first: status %d %s", first.status, first.body)
	}
	if !bytes.Contains(first.body, []byte(`items`)) {
		t.Fatalf("the handler did not see the request body: %s", first.body)
	}
	if first.header.Get(HeaderReplayed) != "" {
		t.Fatalf("first response marked replayed")
	}
	for i := 0; i < 3; i++ {
		again := post(t, s.url+"/api/v1/orders", 42, "order-1", body)
		if again.status != first.status || !bytes.Equal(again.body, first.body) {
			t.Fatalf("replay %d: %d %s, want %d %s", i, again.status, again.body, first.status, first.body)
		}
		if again.header.Get(HeaderReplayed) != "true" {
			t.Fatalf("replay %d: %s = %q", i, HeaderReplayed, again.header.Get(HeaderReplayed))
		}
		for _, h := range []string{echo.HeaderContentType, echo.HeaderLocation, "X-Order-Seq"} {
			if again.header.Get(h) != first.header.Get(h) {
				t.Fatalf("replay %d: %s = %q, want %q", i, h, again.header.Get(h), first.header.Get(h))
			}
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

func TestDifferentRequestWithTheSameKeyIsRefused(t *testing.T) {
	var calls atomic.Int64
	s := newServer(t, config.Idempotency{}, counting(&calls))
	if r := post(t, s.url+"/api/v1/auctions/1/bids", 42, "bid-1", `{"amount":100}`); r.status != http.StatusCreated {
		t.Fatalf("first: %d %s", r.status, r.body)
	}
	tests := []struct {
		name, path, body string
	}{
		{"different body", "/api/v1/auctions/1/bids", `{"amount":200}`},
		{"same body, another auction", "/api/v1/auctions/2/bids", `{"amount":100}`},
		{"same body, another route", "/api/v1/orders", `{"amount":100}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, s.url+tt.path, 42, "bid-1", tt.body)
			if r.status != http.StatusUnprocessableEntity || r.code() != errs.ErrIdempotencyReused.Code {
				t.Fatalf("got %d %s, want 422 %s", r.status, r.body, errs.ErrIdempotencyReused.Code)
			}
		})
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

func TestSameKeyWhileInFlightIsConflict(t *testing.T) {
	var calls atomic.Int64
	entered, release := make(chan struct{}), make(chan struct{})
	enter, unblock := sync.OnceFunc(func() { close(entered) }), sync.OnceFunc(func() { close(release) })
	defer unblock() // never leave a handler blocked when the test fails
	s := newServer(t, config.Idempotency{}, func(c echo.Context) error {
		calls.Add(1)
		enter()
		<-release
		return c.JSON(http.StatusCreated, map[string]string{"id": "1"})
	})
	firstDone := make(chan response, 1)
	go func() { firstDone <- post(t, s.url+"/api/v1/orders", 42, "k", `{}`) }()
	waitFor(t, entered)

	r := post(t, s.url+"/api/v1/orders", 42, "k", `{}`)
	if r.status != http.StatusConflict || r.code() != errs.ErrIdempotencyBusy.Code {
		t.Fatalf("while in flight: %d %s, want 409 %s", r.status, r.body, errs.ErrIdempotencyBusy.Code)
	}
	unblock()
	first := <-firstDone
	if first.status != http.StatusCreated {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	if r := post(t, s.url+"/api/v1/orders", 42, "k", `{}`); r.status != http.StatusCreated || r.header.Get(HeaderReplayed) != "true" {
		t.Fatalf("after: %d %s replayed=%q", r.status, r.body, r.header.Get(HeaderReplayed))
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

// waitFor fails the test instead of hanging when ch is not closed in time.
func waitFor(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the handler")
	}
}

func TestKeyIsRequiredAndBounded(t *testing.T) {
	var calls atomic.Int64
	s := newServer(t, config.Idempotency{}, counting(&calls))
	tests := []struct {
		name string
		give string
		want int
	}{
		{"missing", "", http.StatusBadRequest},
		{"256 characters", strings.Repeat("k", 256), http.StatusBadRequest},
		{"not ASCII", "clé-1", http.StatusBadRequest},
		{"control character", "a\tb", http.StatusBadRequest},
		{"1 character", "k", http.StatusCreated},
		{"255 characters", strings.Repeat("k", 255), http.StatusCreated},
	}
	want := int64(0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, s.url+"/api/v1/orders", 42, tt.give, `{}`)
			if r.status != tt.want {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tt.want)
			}
			if tt.want == http.StatusBadRequest && r.code() != errs.ErrIdempotencyMissing.Code {
				t.Fatalf("code %q, want %q", r.code(), errs.ErrIdempotencyMissing.Code)
			}
			if tt.want == http.StatusCreated {
				want++
			}
			if n := calls.Load(); n != want {
				t.Fatalf("handler ran %d times, want %d", n, want)
			}
		})
	}
}

func TestKeysAreScopedPerUser(t *testing.T) {
	var calls atomic.Int64
	s := newServer(t, config.Idempotency{}, counting(&calls))
	seen := map[string]bool{}
	for _, user := range []int64{1, 2, 0} {
		r := post(t, s.url+"/api/v1/orders", user, "shared-key", `{"a":1}`)
		if r.status != http.StatusCreated || r.header.Get(HeaderReplayed) != "" {
			t.Fatalf("user %d: %d %s replayed=%q", user, r.status, r.body, r.header.Get(HeaderReplayed))
		}
		seen[string(r.body)] = true
	}
	if n := calls.Load(); n != 3 || len(seen) != 3 {
		t.Fatalf("handler ran %d times with %d distinct answers, want 3 and 3", n, len(seen))
	}
	// Each user's own retry replays that user's answer.
	if r := post(t, s.url+"/api/v1/orders", 2, "shared-key", `{"a":1}`); r.header.Get(HeaderReplayed) != "true" ||
		!bytes.Contains(r.body, []byte(`"execution":2`)) {
		t.Fatalf("user 2 retry: %s replayed=%q", r.body, r.header.Get(HeaderReplayed))
	}
}

func TestConcurrentRequestsWithOneKeyRunTheHandlerOnce(t *testing.T) {
	const n = 100
	var calls, arrived atomic.Int64
	allArrived := make(chan struct{})
	countArrivals := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if arrived.Add(1) == n {
				close(allArrived)
			}
			return next(c)
		}
	}
	s := newServerWith(t, config.Idempotency{}, func(c echo.Context) error {
		calls.Add(1)
		// Stay in flight until every request has reached the server.
		select {
		case <-allArrived:
		case <-time.After(10 * time.Second):
		}
		return c.JSON(http.StatusCreated, map[string]int64{"execution": calls.Load()})
	}, []echo.MiddlewareFunc{countArrivals})
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		results = make([]response, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			results[i] = post(t, s.url+"/api/v1/orders", 7, "same", `{"q":1}`)
		})
	}
	close(start)
	wg.Wait()

	stored := post(t, s.url+"/api/v1/orders", 7, "same", `{"q":1}`)
	if stored.status != http.StatusCreated {
		t.Fatalf("stored response: %d %s", stored.status, stored.body)
	}
	var created, busy int
	for i, r := range results {
		switch {
		case r.status == http.StatusCreated && bytes.Equal(r.body, stored.body):
			created++
		case r.status == http.StatusConflict && r.code() == errs.ErrIdempotencyBusy.Code:
			busy++
		default:
			t.Errorf("response %d: %d %s (stored: %s)", i, r.status, r.body, stored.body)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("handler ran %d times, want 1", got)
	}
	if created == 0 {
		t.Fatalf("no request got the created response (%d busy)", busy)
	}
	t.Logf("%d created or replayed, %d busy", created, busy)
}

func TestFailedAttemptLetsTheClientRetry(t *testing.T) {
	tests := []struct {
		name  string
		fail  func(c echo.Context) error
		wantS int
	}{
		{"unexpected error", func(echo.Context) error { return errors.New("database is down") }, http.StatusInternalServerError},
		{"unavailable", func(echo.Context) error { return errs.ErrUnavailable }, http.StatusServiceUnavailable},
		{"written 502", func(c echo.Context) error { return c.JSON(http.StatusBadGateway, map[string]string{"x": "y"}) }, http.StatusBadGateway},
		{"rate limited inside", func(echo.Context) error { return errs.ErrRateLimited.WithRetryAfter(1) }, http.StatusTooManyRequests},
		{"panic", func(echo.Context) error { panic("boom") }, http.StatusInternalServerError},
		{"panic after writing", func(c echo.Context) error {
			_ = c.JSON(http.StatusCreated, map[string]string{"half": "done"})
			panic("late boom")
		}, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			ok := counting(&atomic.Int64{})
			s := newServer(t, config.Idempotency{}, func(c echo.Context) error {
				if calls.Add(1) == 1 {
					return tt.fail(c)
				}
				return ok(c)
			})
			r := post(t, s.url+"/api/v1/orders", 42, "retry-me", `{}`)
			if r.status != tt.wantS {
				t.Fatalf("failed attempt: %d %s, want %d", r.status, r.body, tt.wantS)
			}
			r = post(t, s.url+"/api/v1/orders", 42, "retry-me", `{}`)
			if r.status != http.StatusCreated || r.header.Get(HeaderReplayed) != "" {
				t.Fatalf("retry: %d %s replayed=%q, want a fresh 201", r.status, r.body, r.header.Get(HeaderReplayed))
			}
			r = post(t, s.url+"/api/v1/orders", 42, "retry-me", `{}`)
			if r.status != http.StatusCreated || r.header.Get(HeaderReplayed) != "true" {
				t.Fatalf("after success: %d %s replayed=%q", r.status, r.body, r.header.Get(HeaderReplayed))
			}
			if n := calls.Load(); n != 2 {
				t.Fatalf("handler ran %d times, want 2", n)
			}
		})
	}
}

// A 4xx is the final answer to that request: replaying 409 stock.insufficient is what
// a payment-style key promises (the client must send a new key to try again).
func TestClientErrorIsStoredAndReplayed(t *testing.T) {
	var calls atomic.Int64
	insufficient := errs.New(errs.Conflict, "stock.insufficient")
	s := newServer(t, config.Idempotency{}, func(c echo.Context) error {
		calls.Add(1)
		return insufficient.WithDetail("sku 7 has 1 left")
	})
	first := post(t, s.url+"/api/v1/orders", 42, "k", `{}`)
	if first.status != http.StatusConflict || first.code() != "stock.insufficient" ||
		first.header.Get(echo.HeaderContentType) != httpx.ContentTypeProblem {
		t.Fatalf("first: %d %q %s", first.status, first.header.Get(echo.HeaderContentType), first.body)
	}
	again := post(t, s.url+"/api/v1/orders", 42, "k", `{}`)
	if again.status != first.status || !bytes.Equal(again.body, first.body) ||
		again.header.Get(echo.HeaderContentType) != httpx.ContentTypeProblem || again.header.Get(HeaderReplayed) != "true" {
		t.Fatalf("replay: %d %q %s, want %d %s", again.status, again.header.Get(echo.HeaderContentType), again.body, first.status, first.body)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

func TestExpiredLockIsTakenOverByExactlyOne(t *testing.T) {
	var calls atomic.Int64
	var resumed [3]atomic.Bool // per execution: did the handler see Resumed?
	crashed, winnerIn := make(chan struct{}), make(chan struct{})
	releaseCrashed, releaseWinner := make(chan struct{}), make(chan struct{})
	unblockCrashed := sync.OnceFunc(func() { close(releaseCrashed) })
	unblockWinner := sync.OnceFunc(func() { close(releaseWinner) })
	defer unblockCrashed()
	defer unblockWinner()
	s := newServer(t, config.Idempotency{LockTimeout: time.Hour}, func(c echo.Context) error {
		n := calls.Add(1)
		if n < int64(len(resumed)) {
			resumed[n].Store(Resumed(c.Request().Context()))
		}
		switch n {
		case 1: // the "crashed" process: hangs past its lock
			close(crashed)
			<-releaseCrashed
		case 2: // the one that takes over
			close(winnerIn)
			<-releaseWinner
		}
		return c.JSON(http.StatusCreated, map[string]int64{"execution": n})
	})
	firstDone := make(chan response, 1)
	go func() { firstDone <- post(t, s.url+"/api/v1/orders", 42, "k", `{}`) }()
	waitFor(t, crashed)
	s.expireLock(t, 42, "k")

	const n = 20
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		losers  = make(chan response, n)
		winners = make(chan response, n)
	)
	for range n {
		wg.Go(func() {
			<-start
			r := post(t, s.url+"/api/v1/orders", 42, "k", `{}`)
			if r.status == http.StatusCreated {
				winners <- r
				return
			}
			losers <- r
		})
	}
	close(start)
	waitFor(t, winnerIn)
	for range n - 1 {
		select {
		case r := <-losers:
			if r.status != http.StatusConflict || r.code() != errs.ErrIdempotencyBusy.Code {
				t.Errorf("loser: %d %s, want 409", r.status, r.body)
			}
		case r := <-winners:
			t.Fatalf("a second request succeeded while the taker held the key: %s", r.body)
		case <-time.After(10 * time.Second):
			t.Fatal("timed out waiting for the losers")
		}
	}
	if got := calls.Load(); got != 2 {
		t.Fatalf("handler ran %d times, want 2 (the crashed one and one taker)", got)
	}
	// The first ran on a fresh key; the taker is told an earlier attempt may have had effects.
	if resumed[1].Load() || !resumed[2].Load() {
		t.Fatalf("Resumed: first %v, taker %v; want false, true", resumed[1].Load(), resumed[2].Load())
	}
	unblockWinner()
	wg.Wait()
	won := <-winners

	// The process that lost its lock finishes late: its client gets its answer, but it
	// must not overwrite the taker's stored response.
	unblockCrashed()
	if late := <-firstDone; late.status != http.StatusCreated || !bytes.Contains(late.body, []byte(`"execution":1`)) {
		t.Fatalf("late original: %d %s", late.status, late.body)
	}
	r := post(t, s.url+"/api/v1/orders", 42, "k", `{}`)
	if r.header.Get(HeaderReplayed) != "true" || !bytes.Equal(r.body, won.body) {
		t.Fatalf("replay %s, want the taker's %s", r.body, won.body)
	}
}

func (s *server) expireLock(t *testing.T, user int64, key string) {
	t.Helper()
	if s.rdb != nil {
		k := s.prefix + strconv.FormatInt(user, 10) + ":" + key
		if st, err := s.rdb.HGet(context.Background(), k, "s").Result(); err != nil || st != "0" {
			t.Fatalf("expected one in-flight key: state %q, %v", st, err)
		}
		if err := s.rdb.HSet(context.Background(), k, "lu", 0).Err(); err != nil {
			t.Fatal(err)
		}
		return
	}
	res, err := s.db.Exec(`UPDATE platform_idempotency_keys SET locked_until = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND
WHERE user_id = ? AND idem_key = ? AND state = 0`, user, key)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("expected one in-flight row, updated %d", n)
	}
}

func TestExpiredKeyCountsAsAbsent(t *testing.T) {
	var calls atomic.Int64
	s := newServer(t, config.Idempotency{}, counting(&calls))
	if r := post(t, s.url+"/api/v1/orders", 42, "old", `{"v":1}`); r.status != http.StatusCreated {
		t.Fatalf("first: %d %s", r.status, r.body)
	}
	if _, err := s.db.Exec(`UPDATE platform_idempotency_keys SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND`); err != nil {
		t.Fatal(err)
	}
	// A different body is no reuse once the key expired: it runs as new.
	r := post(t, s.url+"/api/v1/orders", 42, "old", `{"v":2}`)
	if r.status != http.StatusCreated || r.header.Get(HeaderReplayed) != "" {
		t.Fatalf("after expiry: %d %s replayed=%q", r.status, r.body, r.header.Get(HeaderReplayed))
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("handler ran %d times, want 2", n)
	}
	var ttlLeft float64
	if err := s.db.Get(&ttlLeft, `SELECT TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(6), expires_at) FROM platform_idempotency_keys`); err != nil {
		t.Fatal(err)
	}
	if ttlLeft < (24*time.Hour - time.Minute).Seconds() {
		t.Fatalf("key lives %.0fs more, want about 24h", ttlLeft)
	}
}

func TestRequestBodyOverTheLimitIsRefused(t *testing.T) {
	var calls atomic.Int64
	s := newServer(t, config.Idempotency{}, counting(&calls), WithMaxBody(16))
	if r := post(t, s.url+"/api/v1/orders", 42, "k", strings.Repeat("x", 17)); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("17 bytes: %d %s, want 413", r.status, r.body)
	}
	if r := post(t, s.url+"/api/v1/orders", 42, "k", strings.Repeat("x", 16)); r.status != http.StatusCreated ||
		!bytes.Contains(r.body, []byte(strings.Repeat("x", 16))) {
		t.Fatalf("16 bytes: %d %s, want 201 with the body", r.status, r.body)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

func TestJanitorPurgesOnlyExpiredKeys(t *testing.T) {
	cl, _ := sqldbtest.NewCluster(t, sqldbtest.Options{})
	db := cl.Main()
	g := New(db, config.Idempotency{}, nil, WithJanitor(time.Hour, 2)) // batch of 2: several rounds
	for i := range 7 {
		expiry := "UTC_TIMESTAMP(6) - INTERVAL 1 SECOND"
		if i >= 5 {
			expiry = "UTC_TIMESTAMP(6) + INTERVAL 1 HOUR"
		}
		_, err := db.Exec(`INSERT INTO platform_idempotency_keys (user_id, idem_key, request_hash, state, locked_until, created_at, expires_at)
VALUES (1, ?, REPEAT('a', 32), 1, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), `+expiry+`)`, fmt.Sprint("k", i))
		if err != nil {
			t.Fatal(err)
		}
	}
	n, err := g.Purge(context.Background())
	if err != nil || n != 5 {
		t.Fatalf("Purge = %d, %v; want 5", n, err)
	}
	var left int
	if err := db.Get(&left, `SELECT COUNT(*) FROM platform_idempotency_keys`); err != nil || left != 2 {
		t.Fatalf("%d keys left (%v), want 2", left, err)
	}
}

func TestModuleRunsTheJanitor(t *testing.T) {
	cl, _ := sqldbtest.NewCluster(t, sqldbtest.Options{})
	if _, err := cl.Main().Exec(`INSERT INTO platform_idempotency_keys (user_id, idem_key, request_hash, state, locked_until, created_at, expires_at)
VALUES (1, 'old', REPEAT('a', 32), 1, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) - INTERVAL 1 SECOND)`); err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{HTTP: config.HTTP{BodyLimit: "1MB"}, Idempotency: config.Idempotency{TTL: 24 * time.Hour, LockTimeout: time.Minute}}
	var (
		g   *Guard
		rms routeMiddlewares
	)
	app := fxtest.New(t,
		fx.Supply(cfg, cl, slog.New(slog.DiscardHandler)),
		Module,
		worker.Module, // runs the janitor the module contributes
		fx.Populate(&g),
		fx.Invoke(func(p routeMiddlewares) { rms = p }),
	)
	app.RequireStart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left int
		if err := cl.Main().Get(&left, `SELECT COUNT(*) FROM platform_idempotency_keys`); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the janitor did not purge the expired key after start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	app.RequireStop()
	if g == nil || g.maxBody != 1<<20 {
		t.Fatalf("guard not provided with the body limit: %+v", g)
	}
	if len(rms.All) != 1 || rms.All[0].Name != "idempotency" || rms.All[0].Order != RouteOrder ||
		rms.All[0].For(httpx.Route{Idempotent: true}) == nil || rms.All[0].For(httpx.Route{}) != nil {
		t.Fatalf("route middleware contributed: %+v", rms.All)
	}
}

type routeMiddlewares struct {
	fx.In
	All []httpx.RouteMiddleware `group:"route_middleware"`
}

func TestForRouteAppliesOnlyToIdempotentRoutes(t *testing.T) {
	g := New(nil, config.Idempotency{}, nil)
	if mw := g.ForRoute(httpx.Route{Method: http.MethodPost, Path: "/plain"}); mw != nil {
		t.Fatal("ForRoute returned middleware for a route that is not Idempotent")
	}
	mw := g.ForRoute(httpx.Route{Method: http.MethodPost, Path: "/guarded", Idempotent: true})
	if mw == nil {
		t.Fatal("ForRoute returned nil for an Idempotent route")
	}
	e := echo.New()
	e.HTTPErrorHandler = httpx.ErrorHandler(slog.New(slog.DiscardHandler))
	e.POST("/guarded", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }, mw)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/guarded", strings.NewReader(`{}`)))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("guarded route without a key: %d, want 400", rec.Code)
	}
}
