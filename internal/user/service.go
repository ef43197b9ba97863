package user

import (
	"context"
	"errors"
	"log/slog"
	"time"
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

	blocks *blockList
	log    *slog.Logger
	st     *store
	keys   *keyring
	now    func() time.Time
}

var _ Service = (*service)(nil)

func (s *service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// EnsureAdmin creates a password account with platform_admin, or grants platform_admin
// to the existing account with this email (its password is left alone). It is what
// `mall admin create` runs.
func (s *service) EnsureAdmin(ctx context.Context, email, password string) (id int64, created bool, err error) {
	u, err := s.FindByEmail(ctx, email)
	switch {
	case errors.Is(err, ErrNotFound):
		u, err = s.register(ctx, email, password, "", "admin_cli")
		if errors.Is(err, ErrEmailTaken) { // created concurrently
			u, err = s.FindByEmail(ctx, email)
		} else {
			created = err == nil
		}
	}
	if err != nil {
		return 0, false, err
	}
	return u.ID, created, s.GrantRole(ctx, u.ID, RolePlatformAdmin, 0)
}
