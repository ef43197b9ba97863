package user

import (
	"context"
	"database/sql"
	"errors"
)

// linkIdentity links a third-party identity to userID, who started the link while signed in
// (POST /api/v1/me/identities/{provider}/link), and opens a session for them. The identity's
// e-mail need not match the account's: the signed-in user vouches for both. An identity
// already linked to another account is ErrIdentityTaken; linking it again to the same account
// is a plain login. When the provider verified the account's own address, it counts as verified.
func (s *service) linkIdentity(ctx context.Context, userID int64, id ExternalIdentity) (Tokens, error) {
	if id.Provider == "" || id.Subject == "" || len(id.Provider) > 64 || len(id.Subject) > 255 {
		return Tokens{}, ErrOAuthFailed.WithDetail("the provider returned no usable subject")
	}
	owner, err := s.st.identity(ctx, id.Provider, id.Subject)
	switch {
	case err == nil && owner != userID:
		return Tokens{}, ErrIdentityTaken.WithDetail("this %s identity is linked to another account", id.Provider)
	case err == nil:
		return s.sessions.startSession(ctx, userID)
	case !errors.Is(err, ErrNotFound):
		return Tokens{}, err
	}
	u, err := s.st.userByID(ctx, userID)
	if err != nil {
		return Tokens{}, err
	}
	var email sql.NullString
	if e := normalizeEmail(id.Email); id.EmailVerified && validEmail(e) {
		email = sql.NullString{String: e, Valid: true}
	}
	now := s.clock()
	err = s.accounts.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		if err := s.st.insertIdentity(ctx, id.Provider, id.Subject, userID, email, now); err != nil {
			return err
		}
		if email.Valid && u.Email.Valid && email.String == u.Email.String {
			return s.st.setVerified(ctx, userID, now)
		}
		return nil
	})
	if errors.Is(err, errIdentityTaken) {
		return Tokens{}, ErrIdentityTaken.WithDetail("this %s identity is linked to another account", id.Provider)
	}
	if err != nil {
		return Tokens{}, err
	}
	s.emails.profiles.drop(userID)
	return s.sessions.startSession(ctx, userID)
}
