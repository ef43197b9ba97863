package user

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Access tokens are JWTs (RFC 9068 profile): EdDSA over Ed25519, header kid and
// typ "at+jwt", claims iss, aud, sub (user ID), exp, iat, jti (random), roles, mid (the
// merchant the merchant roles are bound to) and sid (the refresh-token family, so logout and
// refresh-token reuse can reject every access token of the session). Roles in the token make
// permission checks free of database reads; a role change shows at the next refresh.
const (
	accessTokenType = "at+jwt"
	// clockLeeway tolerates clock skew between replicas for exp and iat.
	clockLeeway = 30 * time.Second
	// maxTokenLen bounds what the middleware will try to parse.
	maxTokenLen = 4096
)

type accessClaims struct {
	jwt.RegisteredClaims
	Roles      []string `json:"roles,omitempty"`
	MerchantID string   `json:"mid,omitempty"`
	SessionID  string   `json:"sid"`
}

// Validate makes the claims that jwt only checks when present mandatory (jwt calls it after
// its own checks).
func (c accessClaims) Validate() error {
	switch {
	case c.IssuedAt == nil:
		return errors.New("iat is required")
	case c.Subject == "":
		return errors.New("sub is required")
	case c.ID == "":
		return errors.New("jti is required")
	case c.SessionID == "":
		return errors.New("sid is required")
	}
	return nil
}

// verifiedToken is what the middleware learns from a valid access token.
type verifiedToken struct {
	UserID     int64
	TokenID    string
	SessionID  string
	Roles      []string
	MerchantID int64
	ExpiresAt  time.Time
}

// tokenIssuer signs and verifies access tokens with the keyring.
type tokenIssuer struct {
	keys     *keyring
	issuer   string
	audience string
	ttl      time.Duration
	now      func() time.Time
	parser   *jwt.Parser
	verified verifiedCache
}

// verifiedCache remembers tokens whose signature and claims checked out, so a client that
// sends the same access token with every request costs one Ed25519 verification (~70 µs)
// per replica instead of one per request. An entry is only used while the key set that
// verified it is still the current one (a reload that removes a key drops its tokens) and
// until the token expires; the deny-list is still checked on every request.
type verifiedCache struct {
	mu sync.RWMutex
	m  map[string]cachedToken
}

type cachedToken struct {
	vt   verifiedToken
	keys *keySet
}

// verifiedCacheMax bounds the cache; when full, expired entries go, and if that is not
// enough the cache starts over.
const verifiedCacheMax = 50_000

func (c *verifiedCache) get(tok string, ks *keySet, now time.Time) (verifiedToken, bool) {
	c.mu.RLock()
	e, ok := c.m[tok]
	c.mu.RUnlock()
	if !ok || e.keys != ks || !now.Before(e.vt.ExpiresAt.Add(clockLeeway)) {
		return verifiedToken{}, false
	}
	return e.vt, true
}

func (c *verifiedCache) put(tok string, ks *keySet, vt verifiedToken, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cachedToken{}
	}
	if len(c.m) >= verifiedCacheMax {
		for k, e := range c.m {
			if e.keys != ks || !now.Before(e.vt.ExpiresAt.Add(clockLeeway)) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= verifiedCacheMax {
			c.m = map[string]cachedToken{}
		}
	}
	c.m[tok] = cachedToken{vt: vt, keys: ks}
}

func newTokenIssuer(keys *keyring, issuer, audience string, ttl time.Duration, now func() time.Time) *tokenIssuer {
	return &tokenIssuer{
		keys: keys, issuer: issuer, audience: audience, ttl: ttl, now: now,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
			jwt.WithIssuer(issuer),
			jwt.WithAudience(audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(clockLeeway),
			jwt.WithTimeFunc(now),
		),
	}
}

type accessGrant struct {
	UserID     int64
	Roles      []Role
	MerchantID int64
	SessionID  int64
}

// issue signs an access token; it returns the token and its jti.
func (t *tokenIssuer) issue(g accessGrant) (string, string, error) {
	ks := t.keys.current()
	now := t.now()
	jti := rand.Text()
	roles := make([]string, len(g.Roles))
	for i, r := range g.Roles {
		roles[i] = string(r)
	}
	c := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Subject:   strconv.FormatInt(g.UserID, 10),
			Audience:  jwt.ClaimStrings{t.audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        jti,
		},
		Roles:     roles,
		SessionID: strconv.FormatInt(g.SessionID, 10),
	}
	if g.MerchantID != 0 {
		c.MerchantID = strconv.FormatInt(g.MerchantID, 10)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = ks.signKID
	tok.Header["typ"] = accessTokenType
	s, err := tok.SignedString(ks.signKey)
	if err != nil {
		return "", "", fmt.Errorf("sign access token: %w", err)
	}
	return s, jti, nil
}

// verify checks an access token: signature by a key of the current set named by kid,
// algorithm EdDSA only, typ, iss, aud, exp, iat and the claims Validate requires.
func (t *tokenIssuer) verify(s string) (verifiedToken, error) {
	if len(s) > maxTokenLen {
		return verifiedToken{}, errors.New("token too long")
	}
	ks := t.keys.current()
	if vt, ok := t.verified.get(s, ks, t.now()); ok {
		return vt, nil
	}
	vt, err := t.verifyWith(ks, s)
	if err != nil {
		return verifiedToken{}, err
	}
	t.verified.put(s, ks, vt, t.now())
	return vt, nil
}

func (t *tokenIssuer) verifyWith(ks *keySet, s string) (verifiedToken, error) {
	var c accessClaims
	_, err := t.parser.ParseWithClaims(s, &c, func(tok *jwt.Token) (any, error) {
		if typ, _ := tok.Header["typ"].(string); typ != accessTokenType {
			return nil, fmt.Errorf("typ %q is not %q", typ, accessTokenType)
		}
		kid, _ := tok.Header["kid"].(string)
		pub, ok := ks.verify[kid]
		if !ok {
			return nil, fmt.Errorf("unknown kid %q", kid)
		}
		return pub, nil
	})
	if err != nil {
		return verifiedToken{}, err
	}
	uid, err := strconv.ParseInt(c.Subject, 10, 64)
	if err != nil || uid <= 0 {
		return verifiedToken{}, errors.New("sub is not a user ID")
	}
	var mid int64
	if c.MerchantID != "" {
		if mid, err = strconv.ParseInt(c.MerchantID, 10, 64); err != nil || mid <= 0 {
			return verifiedToken{}, errors.New("mid is not a merchant ID")
		}
	}
	return verifiedToken{
		UserID: uid, TokenID: c.ID, SessionID: c.SessionID, Roles: c.Roles, MerchantID: mid,
		ExpiresAt: c.ExpiresAt.Time,
	}, nil
}

// Refresh tokens are 256 random bits, base64url without padding (43 characters); the
// database keeps only their SHA-256.
const refreshTokenLen = 43

func newRefreshToken() (string, [32]byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	s := base64.RawURLEncoding.EncodeToString(b)
	return s, sha256.Sum256([]byte(s))
}

// hashRefreshToken returns the stored form of a presented token; ok is false for anything
// that cannot be a refresh token we issued.
func hashRefreshToken(s string) ([32]byte, bool) {
	if len(s) != refreshTokenLen {
		return [32]byte{}, false
	}
	if _, err := base64.RawURLEncoding.DecodeString(s); err != nil {
		return [32]byte{}, false
	}
	return sha256.Sum256([]byte(s)), true
}
