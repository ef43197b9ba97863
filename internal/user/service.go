package user

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/mallhq/mall/internal/platform/sqldb"
)

// service implements Service and everything the HTTP handlers need. It composes four
// parts, each holding only what it needs, and their methods are promoted: accounts
// (registration, password and third-party login), sessions (tokens, refresh, logout), roles
// (bindings and the role cache) and addresses. Its own fields are what the background jobs
// in module.go (key reload, refresh-token janitor) need.
type service struct {
	*accounts
	*sessions
	*roles
	*addresses
	*emails

	blocks *blockList
	log    *slog.Logger
	st     *store
	keys   *keyring
	now    func() time.Time
}

var _ Service = (*service)(nil)

func (s *service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// ensureAdmin is `mall admin create` (see EnsureAdminWith for the rules).
func (s *service) ensureAdmin(ctx context.Context, email, password string, o AdminOptions) (AdminResult, error) {
	u, err := s.FindByEmail(ctx, email)
	if errors.Is(err, ErrNotFound) {
		u, err = s.register(ctx, email, password, "", viaAdminCLI)
		if err == nil {
			return AdminResult{UserID: u.ID, Outcome: AdminCreated}, s.GrantRole(ctx, u.ID, RolePlatformAdmin, 0)
		}
		if !errors.Is(err, ErrEmailTaken) { // else created concurrently: judged below
			return AdminResult{}, err
		}
		u, err = s.FindByEmail(ctx, email)
	}
	if err != nil {
		return AdminResult{}, err
	}
	res := AdminResult{UserID: u.ID, Outcome: AdminExisting}
	bs, err := s.st.bindings(ctx, u.ID)
	if err != nil {
		return AdminResult{}, err
	}
	for _, b := range bs {
		if b.Role == RolePlatformAdmin {
			return res, nil // already an admin: running it again changes nothing
		}
	}
	row, err := s.st.userByID(ctx, u.ID)
	if err != nil {
		return AdminResult{}, err
	}
	if !row.EmailVerifiedAt.Valid || row.PasswordHash.Valid {
		if !o.ResetPassword {
			return AdminResult{}, ErrAdminTakeover.WithDetail("%s is an account this command did not create (it has a password or an unverified address): "+
				"rerun with --reset-password to set this password, verify the address and end its sessions before it becomes an admin", email)
		}
		if err := s.takeOver(ctx, u.ID, password); err != nil {
			return AdminResult{}, err
		}
		res.Outcome = AdminTakenOver
	}
	return res, s.GrantRole(ctx, u.ID, RolePlatformAdmin, 0)
}

// takeOver sets the operator's password on an account, marks its address verified (the
// operator vouches for it) and revokes every refresh family, so whoever registered it first
// loses it. Their access tokens, buyer-only, live out auth.jwt.access_ttl: the CLI has no
// Redis for the deny-list.
func (s *service) takeOver(ctx context.Context, userID int64, password string) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	h, err := s.accounts.hash.Hash(ctx, password)
	if err != nil {
		return err
	}
	return s.cl().Main().WithinTx(ctx, func(ctx context.Context) error {
		if _, err := s.st.userForUpdate(ctx, userID); err != nil {
			return err
		}
		now := s.clock()
		if err := s.st.setPasswordHash(ctx, userID, h, now); err != nil {
			return err
		}
		if err := s.st.setVerified(ctx, userID, now); err != nil {
			return err
		}
		fams, err := s.st.liveFamilies(ctx, userID)
		if err != nil {
			return err
		}
		for _, f := range fams {
			if err := s.st.revokeFamily(ctx, f); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *service) cl() *sqldb.Cluster { return s.accounts.cl }
