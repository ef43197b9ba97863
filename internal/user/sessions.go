package user

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/ratelimit"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// sessions issues access tokens and rotates, revokes and deny-lists the refresh-token
// families behind them.
type sessions struct {
	cfg    Config
	log    *slog.Logger
	st     *store
	cl     *sqldb.Cluster
	ids    *idgen.Generator
	tokens *tokenIssuer
	deny   *denyList
	// limiter bounds refreshes per session (nil: unbounded); ender closes WebSockets of
	// ended sessions (nil: none); blocks refuses blocked users' refreshes (nil: none).
	limiter *ratelimit.Limiter
	ender   connEnder
	blocks  *blockList
	now     func() time.Time
}

func (s *sessions) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// startSession opens a refresh-token family and issues the first pair.
func (s *sessions) startSession(ctx context.Context, userID int64) (Tokens, error) {
	if err := s.checkCanSignIn(ctx, userID); err != nil { // email.go
		return Tokens{}, err
	}
	now := s.clock()
	familyID := s.ids.Next(sqldb.LogicalShard(userID))
	refresh, hash := newRefreshToken()
	err := s.st.insertRefresh(ctx, s.ids.Next(sqldb.LogicalShard(userID)), hash, familyID, userID,
		now.Add(s.cfg.RefreshTTL), now)
	if err != nil {
		return Tokens{}, err
	}
	access, err := s.issueAccess(ctx, userID, familyID)
	if err != nil {
		return Tokens{}, err
	}
	return Tokens{AccessToken: access, RefreshToken: refresh, ExpiresIn: s.cfg.JWT.AccessTTL}, nil
}

// issueAccess signs an access token with the user's current roles.
func (s *sessions) issueAccess(ctx context.Context, userID, sessionID int64) (string, error) {
	bs, err := s.st.bindings(ctx, userID)
	if err != nil {
		return "", err
	}
	roles, merchantID := rolesOf(bs)
	tok, _, err := s.tokens.issue(accessGrant{UserID: userID, Roles: roles, MerchantID: merchantID, SessionID: sessionID})
	return tok, err
}

// rolesOf lists buyer and the distinct bound roles, and the merchant the merchant roles
// are bound to (GrantRole keeps that to one merchant).
func rolesOf(bs []RoleBinding) ([]Role, int64) {
	roles := []Role{RoleBuyer}
	var merchantID int64
	seen := map[Role]bool{RoleBuyer: true}
	for _, b := range bs {
		if b.MerchantID != 0 {
			if merchantID != 0 && b.MerchantID != merchantID {
				continue
			}
			merchantID = b.MerchantID
		}
		if !seen[b.Role] {
			seen[b.Role] = true
			roles = append(roles, b.Role)
		}
	}
	return roles, merchantID
}

// Refresh rotates a refresh token. The presented token is marked used and its successor
// inserted in one transaction, with a conditional update, so of two concurrent refreshes
// with one token exactly one succeeds. A used token presented again means it was stolen
// (or the client is broken): the whole family is revoked, and the session's access tokens
// are deny-listed.
func (s *sessions) Refresh(ctx context.Context, token string) (Tokens, error) {
	hash, ok := hashRefreshToken(token)
	if !ok {
		return Tokens{}, ErrInvalidRefreshToken
	}
	if err := s.beforeRefresh(ctx, hash); err != nil {
		return Tokens{}, err
	}
	now := s.clock()
	next, nextHash := newRefreshToken()
	var (
		row  refreshRow
		used bool
	)
	err := s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		var err error
		if used, err = s.st.useRefresh(ctx, hash, now); err != nil {
			return err
		}
		if row, err = s.st.refreshByHash(ctx, hash); err != nil {
			return err
		}
		if !used {
			return nil
		}
		return s.st.insertRefresh(ctx, s.ids.Next(sqldb.LogicalShard(row.UserID)), nextHash, row.FamilyID, row.UserID,
			now.Add(s.cfg.RefreshTTL), now)
	})
	if err != nil {
		return Tokens{}, err
	}
	if !used {
		if row.Status == refreshUsed {
			s.log.WarnContext(ctx, "user: refresh token reused; family revoked", "user_id", row.UserID, "family_id", row.FamilyID)
			if err := s.revokeSession(ctx, row.UserID, row.FamilyID); err != nil {
				return Tokens{}, err
			}
			return Tokens{}, ErrRefreshReused
		}
		return Tokens{}, ErrInvalidRefreshToken // revoked, or expired
	}
	access, err := s.issueAccess(ctx, row.UserID, row.FamilyID)
	if err != nil {
		return Tokens{}, err
	}
	return Tokens{AccessToken: access, RefreshToken: next, ExpiresIn: s.cfg.JWT.AccessTTL}, nil
}

// beforeRefresh refuses, before the token is used up, a refresh of a blocked user's
// session or one past the session's rate (auth.refresh_per_minute). An unknown token
// passes: the transaction answers it.
func (s *sessions) beforeRefresh(ctx context.Context, hash [32]byte) error {
	if s.limiter == nil && s.blocks == nil {
		return nil
	}
	row, err := s.st.refreshByHash(ctx, hash)
	if errors.Is(err, ErrInvalidRefreshToken) {
		return nil
	}
	if err != nil {
		return err
	}
	if s.blocks != nil {
		if err := s.blocks.checkUser(row.UserID); err != nil {
			return err
		}
	}
	if s.limiter == nil {
		return nil
	}
	res, err := s.limiter.Allow(ctx, refreshClass, "family:"+strconv.FormatInt(row.FamilyID, 10))
	if err != nil {
		return err
	}
	if !res.Allowed {
		secs := ratelimit.RetryAfterSeconds(res.RetryAfter)
		return errs.ErrRateLimited.WithRetryAfter(secs).WithDetail("this session refreshes too often; retry in %d s", secs)
	}
	return nil
}

// revokeSession revokes a refresh family, deny-lists its access tokens for as long as any
// of them can live, and closes its WebSockets on every replica.
func (s *sessions) revokeSession(ctx context.Context, userID, familyID int64) error {
	if err := s.st.revokeFamily(ctx, familyID); err != nil {
		return err
	}
	sid := strconv.FormatInt(familyID, 10)
	if err := s.deny.deny(ctx, s.cfg.JWT.AccessTTL+clockLeeway, denySessionKey(userID, sid)); err != nil {
		s.log.WarnContext(ctx, "user: session deny-list not written to redis (kept in process)", "error", err.Error())
	}
	if s.ender != nil {
		if err := s.ender.EndSession(ctx, userID, sid); err != nil {
			s.log.WarnContext(ctx, "user: session's WebSockets not closed on other replicas", "error", err.Error())
		}
	}
	return nil
}

// session is what the middleware learned about the access token beyond the principal.
type session struct {
	ID        string
	ExpiresAt time.Time
}

type sessionKey struct{}

func withSession(ctx context.Context, s session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

func sessionFrom(ctx context.Context) (session, bool) {
	s, ok := ctx.Value(sessionKey{}).(session)
	return s, ok
}

// Logout ends the caller's session: the access token's jti is deny-listed until it
// expires, the session's refresh family is revoked (and its other access tokens
// deny-listed), and so is the family of refreshToken when given and the caller's.
func (s *sessions) Logout(ctx context.Context, refreshToken string) error {
	p, ok := authn.From(ctx)
	sess, ok2 := sessionFrom(ctx)
	if !ok || !ok2 {
		return errs.ErrUnauthenticated
	}
	if err := s.deny.deny(ctx, time.Until(sess.ExpiresAt)+clockLeeway, denyTokenKey(p.UserID, p.TokenID)); err != nil {
		s.log.WarnContext(ctx, "user: token deny-list not written to redis (kept in process)", "error", err.Error())
	}
	if fid, err := strconv.ParseInt(sess.ID, 10, 64); err == nil {
		if err := s.revokeSession(ctx, p.UserID, fid); err != nil {
			return err
		}
	}
	if refreshToken == "" {
		return nil
	}
	hash, ok := hashRefreshToken(refreshToken)
	if !ok {
		return nil // nothing of ours to revoke; logout itself succeeded
	}
	row, err := s.st.refreshByHash(ctx, hash)
	if errors.Is(err, ErrInvalidRefreshToken) || (err == nil && row.UserID != p.UserID) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.revokeSession(ctx, row.UserID, row.FamilyID)
}

// endSessions revokes every refresh family of the user and denies their access tokens.
func (s *sessions) endSessions(ctx context.Context, userID int64) error {
	families, err := s.st.liveFamilies(ctx, userID)
	if err != nil {
		return err
	}
	for _, fid := range families {
		if err := s.revokeSession(ctx, userID, fid); err != nil {
			return err
		}
	}
	return nil
}
