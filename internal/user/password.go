package user

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

// PasswordParams are argon2id parameters.
type PasswordParams struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
}

// DefaultPasswordParams is OWASP's argon2id configuration m=19 MiB, t=2, p=1. OWASP rates
// it equal to m=64 MiB, t=1; we take the smaller memory because the server runs up to
// auth.password.max_concurrent_hashes hashes at once (about GOMAXPROCS): 19 MiB each keeps a
// login burst's memory small, and on the reference machine it is also about three times
// faster (~50 ms against ~160 ms), so more logins per second fit on a core.
var DefaultPasswordParams = PasswordParams{Memory: 19 * 1024, Time: 2, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
	// hashWait bounds how long a request waits for a hashing slot before answering 503:
	// a login flood must not queue requests behind each other without end.
	hashWait = 10 * time.Second
	// Upper bounds accepted when parsing a stored hash, so a corrupt row cannot make one
	// verification allocate gigabytes.
	maxMemory  = 1 << 20 // 1 GiB
	maxTime    = 16
	maxThreads = 16
)

var errBadHash = errors.New("user: malformed password hash")

// hasher computes argon2id hashes, at most cap(slots) at a time.
type hasher struct {
	params PasswordParams
	slots  chan struct{}
	// dummy is a hash of a random password with params: an unknown email is verified against
	// it so the answer takes as long as a wrong password does.
	dummy string
}

func newHasher(p PasswordParams, maxConcurrent int) (*hasher, error) {
	if p.Memory == 0 || p.Time == 0 || p.Threads == 0 {
		return nil, fmt.Errorf("user: argon2id parameters must be positive, got %+v", p)
	}
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.GOMAXPROCS(0)
	}
	h := &hasher{params: p, slots: make(chan struct{}, maxConcurrent)}
	h.dummy = h.encode(rand.Text())
	return h, nil
}

// acquire waits for a hashing slot, for at most hashWait or until ctx ends.
func (h *hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(hashWait)
	defer t.Stop()
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return ErrBusy.WithDetail("too many logins in progress; retry shortly").WithRetryAfter(1)
	}
}

func (h *hasher) release() { <-h.slots }

// Hash returns the PHC string of password.
func (h *hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	return h.encode(password), nil
}

func (h *hasher) encode(password string) string {
	salt := make([]byte, saltLen)
	_, _ = rand.Read(salt)
	p := h.params
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// Verify reports whether password matches encoded. An empty encoded (no password set, or
// no such user) is checked against the dummy hash, so it costs the same and fails.
// rehash is true when encoded used other parameters than the current ones.
func (h *hasher) Verify(ctx context.Context, encoded, password string) (ok, rehash bool, err error) {
	real := encoded != ""
	if !real {
		encoded = h.dummy
	}
	p, salt, want, err := decodeHash(encoded)
	if err != nil {
		return false, false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	h.release()
	ok = subtle.ConstantTimeCompare(got, want) == 1 && real
	return ok, ok && p != h.params, nil
}

func decodeHash(s string) (PasswordParams, []byte, []byte, error) {
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return PasswordParams{}, nil, nil, errBadHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return PasswordParams{}, nil, nil, errBadHash
	}
	var p PasswordParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return PasswordParams{}, nil, nil, errBadHash
	}
	if p.Memory == 0 || p.Memory > maxMemory || p.Time == 0 || p.Time > maxTime || p.Threads == 0 || p.Threads > maxThreads {
		return PasswordParams{}, nil, nil, errBadHash
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return PasswordParams{}, nil, nil, errBadHash
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return PasswordParams{}, nil, nil, errBadHash
	}
	return p, salt, key, nil
}
