package user

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// roles grants and revokes users' role bindings. It embeds the cache of the role
// definitions, so roles.get is their current snapshot, which authentication turns into
// grants.
type roles struct {
	*roleCache
	st       *store
	cl       *sqldb.Cluster
	outbox   outbox.Writer
	sessions *sessions
	now      func() time.Time
}

func (s *roles) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Roles implements Service.
func (s *roles) Roles(ctx context.Context, userID int64) ([]RoleBinding, error) {
	if _, err := s.st.userByID(ctx, userID); err != nil {
		return nil, err
	}
	bs, err := s.st.bindings(ctx, userID)
	if err != nil {
		return nil, err
	}
	return append([]RoleBinding{{Role: RoleBuyer}}, bs...), nil
}

// userWithRoles is a row of the admin user list.
type userWithRoles struct {
	User
	Roles []RoleBinding
}

// listUsers finds users by exact (normalized) email, or lists them newest first.
func (s *roles) listUsers(ctx context.Context, email string, before int64, limit int) ([]userWithRoles, error) {
	var rows []userRow
	if email != "" {
		r, err := s.st.userByEmail(ctx, normalizeEmail(email))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if err == nil && (before == 0 || r.ID < before) {
			rows = []userRow{r}
		}
	} else {
		var err error
		if rows, err = s.st.listUsers(ctx, before, limit); err != nil {
			return nil, err
		}
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	bs, err := s.st.bindingsOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]userWithRoles, len(rows))
	for i, r := range rows {
		out[i] = userWithRoles{User: r.user(), Roles: append([]RoleBinding{{Role: RoleBuyer}}, bs[r.ID]...)}
	}
	return out, nil
}

// GrantRole implements Service; the caller in ctx, if any, is recorded as the grantor. Only
// an account with a verified address receives a role (ErrEmailUnverified): whoever
// registered an address first is not necessarily its owner.
func (s *roles) GrantRole(ctx context.Context, userID int64, role Role, merchantID int64) error {
	grantedBy := authn.UserID(ctx)
	now := s.clock()
	return s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		u, err := s.st.userForUpdate(ctx, userID)
		if err != nil {
			return err
		}
		if role == RoleBuyer {
			if merchantID != 0 {
				return ErrMerchantNotAllowed.WithDetail("buyer is not a merchant role")
			}
			return nil // everyone is a buyer
		}
		if !u.user().EmailVerified {
			return ErrEmailUnverified.WithDetail("the account's e-mail address is not verified: it cannot receive roles")
		}
		scope, err := s.st.roleScope(ctx, role)
		if err != nil {
			return err
		}
		switch scope {
		case scopeMerchant:
			if merchantID <= 0 {
				return ErrMerchantRequired.WithDetail("role %s is bound to a merchant: merchant_id is required", role)
			}
			bs, err := s.st.bindings(ctx, userID)
			if err != nil {
				return err
			}
			for _, b := range bs {
				if b.MerchantID != 0 && b.MerchantID != merchantID {
					return ErrMerchantConflict.WithDetail("the user already works for merchant %d", b.MerchantID)
				}
			}
		default:
			if merchantID != 0 {
				return ErrMerchantNotAllowed.WithDetail("role %s is platform-wide: merchant_id must be absent", role)
			}
		}
		added, err := s.st.insertBinding(ctx, userID, RoleBinding{Role: role, MerchantID: merchantID}, grantedBy, now)
		if err != nil || !added {
			return err
		}
		return s.outbox.Add(ctx, outbox.Event{
			Topic: Topic, AggregateID: strconv.FormatInt(userID, 10), Type: EventRoleGranted,
			Payload: RoleGranted{UserID: userID, Role: role, MerchantID: merchantID, GrantedBy: grantedBy, OccurredAt: now},
		})
	})
}

// RevokeRole implements Service; the caller in ctx, if any, is recorded as the revoker.
// The binding goes first, then the sessions: a refresh racing with the revocation either
// read the roles before (its family is then revoked below) or after (no role to carry).
func (s *roles) RevokeRole(ctx context.Context, userID int64, role Role, merchantID int64) error {
	if role == RoleBuyer {
		return ErrMerchantNotAllowed.WithDetail("buyer cannot be revoked: everyone is a buyer")
	}
	revokedBy := authn.UserID(ctx)
	now := s.clock()
	err := s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		if err := s.st.lockUser(ctx, userID); err != nil {
			return err
		}
		removed, err := s.st.deleteBinding(ctx, userID, RoleBinding{Role: role, MerchantID: merchantID})
		if err != nil || !removed {
			return err
		}
		return s.outbox.Add(ctx, outbox.Event{
			Topic: Topic, AggregateID: strconv.FormatInt(userID, 10), Type: EventRoleRevoked,
			Payload: RoleRevoked{UserID: userID, Role: role, MerchantID: merchantID, RevokedBy: revokedBy, OccurredAt: now},
		})
	})
	if err != nil {
		return err
	}
	return s.sessions.endSessions(ctx, userID)
}
