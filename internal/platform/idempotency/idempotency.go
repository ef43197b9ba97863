// Package idempotency implements the Idempotency-Key contract of API.md for the routes that
// opt in: the first request with a key runs and its final response is stored in MySQL
// (platform_idempotency_keys on the main database, per user); a retry with the same key and
// body gets that response replayed byte for byte, a different body is refused with 422 and
// a retry while the first is still running with 409.
//
// What is stored: every response with a status below 500 except 408 and 429 — a 201 as well
// as a 409 stock.insufficient or a 400 validation error is the final answer to that request,
// and replaying it is what a payment-style key promises. A 5xx, a 408/429, a panic, or a
// response too large to store deletes the key instead, so the client may retry with it.
//
// The request hash covers the method, the concrete request URI (path and query) and the
// body bytes, so the same key on /auctions/1/bids and /auctions/2/bids is a reuse (422).
//
// The response is buffered and stored before it is sent, so once a client has seen an
// answer every retry gets it replayed (there is no window in which the client holds a
// response whose key still looks in flight). Routes behind this middleware therefore cannot
// stream or hijack the connection. A handler running longer than the lock timeout may see
// its key taken over by a retry; the lock token then keeps the late one from storing.
package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/httpx"
	mlog "github.com/mallhq/mall/internal/platform/log"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// Headers.
const (
	HeaderKey      = "Idempotency-Key"
	HeaderReplayed = "Idempotent-Replayed"
)

// MaxKeyLen is the longest key accepted (API.md: 1–255 characters).
const MaxKeyLen = 255

// Defaults for zero configuration values.
const (
	DefaultTTL             = 24 * time.Hour
	DefaultLockTimeout     = 60 * time.Second
	DefaultMaxStoredBody   = 1 << 20
	DefaultJanitorInterval = 10 * time.Minute
	DefaultJanitorBatch    = 1000
)

// Guard is the idempotency middleware factory and the janitor of expired keys.
type Guard struct {
	store           backend
	log             *slog.Logger
	maxBody         int64
	maxStored       int
	janitorInterval time.Duration
}

// Option adjusts a Guard.
type Option func(*Guard)

// WithMaxBody bounds the request body read for hashing (use http.body_limit); larger bodies
// answer 413. 0 means unbounded (the server's body limit still applies).
func WithMaxBody(n int64) Option { return func(g *Guard) { g.maxBody = n } }

// WithMaxStoredBody bounds the stored response body (default 1 MiB); a larger response is
// sent but not stored, and the key is released.
func WithMaxStoredBody(n int) Option { return func(g *Guard) { g.maxStored = n } }

// WithJanitor sets the janitor's interval and batch size.
func WithJanitor(interval time.Duration, batch int) Option {
	return func(g *Guard) {
		g.janitorInterval = interval
		if st, ok := g.store.(*store); ok {
			st.batch = batch
		}
	}
}

// New returns a Guard storing keys in db (the main database). Zero TTL and LockTimeout
// take the defaults.
func New(db *sqldb.DB, cfg config.Idempotency, log *slog.Logger, opts ...Option) *Guard {
	cfg = withDefaults(cfg)
	return newGuard(&store{db: db, ttl: cfg.TTL, lockTimeout: cfg.LockTimeout, batch: DefaultJanitorBatch}, log, opts)
}

// NewRedis returns a Guard storing keys in Redis under prefix (redis_store.go has the
// trade-off). Zero TTL and LockTimeout take the defaults.
func NewRedis(rdb redis.UniversalClient, prefix string, cfg config.Idempotency, log *slog.Logger, opts ...Option) *Guard {
	cfg = withDefaults(cfg)
	return newGuard(&redisStore{rdb: rdb, prefix: prefix, ttl: cfg.TTL, lockTimeout: cfg.LockTimeout}, log, opts)
}

func withDefaults(cfg config.Idempotency) config.Idempotency {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.LockTimeout <= 0 {
		cfg.LockTimeout = DefaultLockTimeout
	}
	return cfg
}

func newGuard(b backend, log *slog.Logger, opts []Option) *Guard {
	log = mlog.OrDiscard(log)
	g := &Guard{store: b, log: log, maxStored: DefaultMaxStoredBody, janitorInterval: DefaultJanitorInterval}
	for _, o := range opts {
		o(g)
	}
	if st, ok := g.store.(*store); ok && st.batch <= 0 {
		st.batch = DefaultJanitorBatch
	}
	return g
}

// backend is where keys live: MySQL (store) or Redis (redisStore).
type backend interface {
	acquire(ctx context.Context, user int64, key string, hash []byte) (lock, *storedResponse, error)
	complete(ctx context.Context, lk lock, r storedResponse) (bool, error)
	release(ctx context.Context, lk lock) error
	purge(ctx context.Context) (int64, error)
}

// ForRoute returns the middleware for a route that sets Idempotent, nil for any other
// (httpx.RouteMiddleware's contract).
func (g *Guard) ForRoute(r httpx.Route) echo.MiddlewareFunc {
	if !r.Idempotent {
		return nil
	}
	return g.Middleware()
}

type resumedKey struct{}

// Resumed reports whether the request took its Idempotency-Key over from an earlier request
// with the key that never finished (the process died, or it outlived the lock timeout). Only
// then can effects of an earlier attempt exist: a handler whose effects are not atomic with
// the stored response (a checkout committed before the response was stored) looks for them
// first. A fresh key is false: nothing with this key has run.
func Resumed(ctx context.Context) bool {
	v, _ := ctx.Value(resumedKey{}).(bool)
	return v
}

// Middleware enforces Idempotency-Key on the routes it is applied to. It runs after
// authentication (keys are scoped by authn.UserID, 0 for anonymous callers).
func (g *Guard) Middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error { return g.serve(c, next) }
	}
}

func (g *Guard) serve(c echo.Context, next echo.HandlerFunc) error {
	req := c.Request()
	key := req.Header.Get(HeaderKey)
	if err := validKey(key); err != nil {
		return err
	}
	body, err := g.readBody(req)
	if err != nil {
		return err
	}
	ctx := req.Context()
	lk, stored, err := g.store.acquire(ctx, authn.UserID(ctx), key, requestHash(req, body))
	if err != nil {
		return err
	}
	if stored != nil {
		return replay(c, stored)
	}
	if lk.resumed {
		c.SetRequest(req.WithContext(context.WithValue(ctx, resumedKey{}, true)))
	}
	return g.run(c, next, lk)
}

// run executes the handler with the response buffered, stores or releases the key, then
// sends the response. A panic releases the key and propagates with the response state
// reset, so the recover middleware can still answer.
func (g *Guard) run(c echo.Context, next echo.HandlerFunc, lk lock) error {
	resp := c.Response()
	orig := resp.Writer
	before := orig.Header().Clone()
	rec := &recorder{header: orig.Header().Clone()}
	resp.Writer = rec
	done := false
	defer func() {
		if done {
			return
		}
		resp.Writer = orig
		resp.Committed, resp.Status, resp.Size = false, http.StatusOK, 0
		g.release(c.Request().Context(), lk)
	}()

	if err := next(c); err != nil {
		// Answer the error now, while the recorder captures it: its problem+json is the
		// response to store (or to send before releasing the key).
		c.Echo().HTTPErrorHandler(err, c)
	}
	done = true
	resp.Writer = orig

	status := rec.statusOrOK()
	ctx := c.Request().Context()
	switch {
	case !final(status):
		g.release(ctx, lk)
	case rec.body.Len() > g.maxStored:
		g.log.WarnContext(ctx, "idempotency: response too large to store; key released",
			"route", c.Path(), "size", rec.body.Len(), "max", g.maxStored)
		g.release(ctx, lk)
	default:
		g.complete(ctx, lk, storedResponse{Status: status, Header: storedHeaders(before, rec.header), Body: rec.body.Bytes()})
	}
	rec.sendTo(orig)
	return nil
}

// final reports whether a status is the request's final answer (stored and replayed).
func final(status int) bool {
	return status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests
}

func (g *Guard) complete(ctx context.Context, lk lock, r storedResponse) {
	ctx, cancel := uncancelled(ctx)
	defer cancel()
	ok, err := g.store.complete(ctx, lk, r)
	switch {
	case err != nil:
		// The client still gets its answer; the key stays in flight until its lock times
		// out, after which a retry runs the handler again.
		g.log.ErrorContext(ctx, "idempotency: storing the response failed", "error", err.Error())
	case !ok:
		g.log.WarnContext(ctx, "idempotency: key was taken over while the handler ran (it outlived the lock timeout); response not stored")
	}
}

func (g *Guard) release(ctx context.Context, lk lock) {
	ctx, cancel := uncancelled(ctx)
	defer cancel()
	if err := g.store.release(ctx, lk); err != nil {
		g.log.WarnContext(ctx, "idempotency: releasing the key failed; it frees itself when its lock times out", "error", err.Error())
	}
}

// uncancelled keeps the request's values but not its cancellation: a client hanging up must
// not leave its key half-written.
func uncancelled(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

// ValidKey checks an Idempotency-Key header: present, at most MaxKeyLen, printable ASCII.
// Routes that keep their own idempotency (the flash-sale gate) still check the header
// with it.
func ValidKey(k string) error { return validKey(k) }

func validKey(k string) error {
	if k == "" {
		return errs.ErrIdempotencyMissing.WithDetail("the Idempotency-Key header is required on this route")
	}
	if len(k) > MaxKeyLen {
		return errs.ErrIdempotencyMissing.WithDetail("the Idempotency-Key header must be at most %d characters", MaxKeyLen)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return errs.ErrIdempotencyMissing.WithDetail("the Idempotency-Key header must be printable ASCII")
		}
	}
	return nil
}

// readBody reads the body for hashing and puts it back for the handler.
func (g *Guard) readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	r := io.Reader(req.Body)
	if g.maxBody > 0 {
		r = io.LimitReader(req.Body, g.maxBody+1)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		var he *echo.HTTPError // echo's BodyLimit middleware answers 413 this way
		if errors.As(err, &he) {
			return nil, err
		}
		var me *http.MaxBytesError
		if errors.As(err, &me) {
			return nil, errs.ErrPayloadTooLarge
		}
		return nil, errs.ErrInvalid.WithDetail("reading the request body: %v", err)
	}
	if g.maxBody > 0 && int64(len(b)) > g.maxBody {
		return nil, errs.ErrPayloadTooLarge.WithDetail("the request body exceeds %d bytes", g.maxBody)
	}
	_ = req.Body.Close()
	req.Body = io.NopCloser(bytes.NewReader(b))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	return b, nil
}

// requestHash identifies a request: method, the concrete request URI (path and query, so
// one key on /auctions/1/bids and /auctions/2/bids is a reuse, not a replay) and the body
// bytes.
func requestHash(req *http.Request, body []byte) []byte {
	h := sha256.New()
	h.Write([]byte(req.Method))
	h.Write([]byte{0})
	h.Write([]byte(req.URL.RequestURI()))
	h.Write([]byte{0})
	h.Write(body)
	return h.Sum(nil)
}

// storedHeaders picks the headers a replay repeats: Content-Type, Location and X-* headers
// the handler set, except per-request ones (request IDs, rate limits) — those describe the
// retry, not the original.
func storedHeaders(before, after http.Header) http.Header {
	out := http.Header{}
	for k, v := range after {
		ck := http.CanonicalHeaderKey(k)
		lk := strings.ToLower(ck)
		switch {
		case ck == echo.HeaderContentType || ck == echo.HeaderLocation:
		case strings.HasPrefix(lk, "x-") && lk != "x-request-id" && !strings.HasPrefix(lk, "x-ratelimit-") &&
			!equalValues(before.Values(ck), v):
		default:
			continue
		}
		out[ck] = append([]string(nil), v...)
	}
	return out
}

func equalValues(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func replay(c echo.Context, r *storedResponse) error {
	resp := c.Response()
	h := resp.Header()
	for k, v := range r.Header {
		h[k] = v
	}
	h.Set(HeaderReplayed, "true")
	resp.WriteHeader(r.Status)
	_, err := resp.Write(r.Body)
	return err
}

// recorder buffers a response until its key is stored.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 { // 1xx are informational; the final status follows
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

// Flush is a no-op: the response is sent whole once stored.
func (r *recorder) Flush() {}

func (r *recorder) statusOrOK() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// sendTo writes the buffered response to w, replacing w's headers with the final ones.
func (r *recorder) sendTo(w http.ResponseWriter) {
	h := w.Header()
	for k := range h {
		if _, ok := r.header[k]; !ok {
			delete(h, k)
		}
	}
	for k, v := range r.header {
		h[k] = v
	}
	if r.status == 0 {
		return // nothing written: net/http answers 200 with these headers
	}
	w.WriteHeader(r.status)
	_, _ = w.Write(r.body.Bytes())
}
