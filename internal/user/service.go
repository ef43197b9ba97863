package user

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// service implements Service and everything the HTTP handlers need.
type service struct {
	cfg      Config
	log      *slog.Logger
	st       *store
	cl       *sqldb.Cluster
	ids      *idgen.Generator
	outbox   outbox.Writer
	hash     *hasher
	keys     *keyring
	tokens   *tokenIssuer
	deny     *denyList
	guard    *loginGuard
	phones   *phoneCipher
	roles    *roleCache
	profiles *profileCache
	now      func() time.Time
}

var _ Service = (*service)(nil)

func (s *service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// newUserID spreads users over the logical shards at random; the ID carries its shard, so
// user_id mod 1024 is that shard.
func (s *service) newUserID() int64 { return s.ids.Next(rand.IntN(sqldb.LogicalShards)) }

// Validation.

const (
	minPassword = 8
	maxPassword = 128
	maxEmail    = 254
	maxNickname = 64
)

// normalizeEmail trims and lower-cases.
func normalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// validEmail reports whether a normalized email is a plain addr-spec with a dotted domain.
func validEmail(e string) bool {
	if e == "" || len(e) > maxEmail || !utf8.ValidString(e) {
		return false
	}
	local, domain, ok := strings.Cut(e, "@")
	if !ok || local == "" || len(local) > 64 || domain == "" || strings.Contains(domain, "@") ||
		!strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return false
	}
	for _, r := range e {
		if r <= ' ' || r == 0x7f || unicode.IsSpace(r) {
			return false
		}
	}
	a, err := mail.ParseAddress(e)
	return err == nil && a.Name == "" && a.Address == e
}

func fieldErr(field, msg string) error {
	return errs.ErrValidation.WithDetail("invalid fields: %s", field).WithFields(errs.FieldError{Field: field, Message: msg})
}

func checkPassword(p string) error {
	if n := utf8.RuneCountInString(p); n < minPassword || n > maxPassword || !utf8.ValidString(p) {
		return fieldErr("password", fmt.Sprintf("must have %d to %d characters", minPassword, maxPassword))
	}
	return nil
}

// cleanText trims s and rejects control characters; "" stays "".
func cleanText(s string, max int) (string, bool) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return s, false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return s, false
		}
	}
	return s, true
}

// defaultNickname is the email's local part, or "user".
func defaultNickname(email string) string {
	local, _, _ := strings.Cut(email, "@")
	if n, ok := cleanText(local, maxNickname); ok && n != "" {
		return n
	}
	if local != "" {
		r := []rune(local)
		return string(r[:min(len(r), maxNickname)])
	}
	return "user"
}

// Registration and login.

// Register creates a password account.
func (s *service) Register(ctx context.Context, email, password, nickname string) (User, error) {
	return s.register(ctx, email, password, nickname, "password")
}

func (s *service) register(ctx context.Context, email, password, nickname, via string) (User, error) {
	email = normalizeEmail(email)
	if !validEmail(email) {
		return User{}, fieldErr("email", "must be a valid email address")
	}
	if err := checkPassword(password); err != nil {
		return User{}, err
	}
	nick, ok := cleanText(nickname, maxNickname)
	if !ok {
		return User{}, fieldErr("nickname", fmt.Sprintf("must have at most %d characters and no control characters", maxNickname))
	}
	if nick == "" {
		nick = defaultNickname(email)
	}
	// Cheap check first: a duplicate costs no hash. The unique key decides races.
	if _, err := s.st.userByEmail(ctx, email); err == nil {
		return User{}, ErrEmailTaken
	} else if !errors.Is(err, ErrNotFound) {
		return User{}, err
	}
	hash, err := s.hash.Hash(ctx, password)
	if err != nil {
		return User{}, err
	}
	now := s.clock()
	r := userRow{ID: s.newUserID(), Email: sql.NullString{String: email, Valid: true},
		PasswordHash: sql.NullString{String: hash, Valid: true}, Nickname: nick, CreatedAt: now, UpdatedAt: now}
	if err := s.createUser(ctx, r, via); err != nil {
		return User{}, err
	}
	return r.user(), nil
}

// createUser inserts the row and its user.registered event in one transaction.
func (s *service) createUser(ctx context.Context, r userRow, via string, then ...func(ctx context.Context) error) error {
	return s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		if err := s.st.insertUser(ctx, r); err != nil {
			return err
		}
		for _, f := range then {
			if err := f(ctx); err != nil {
				return err
			}
		}
		return s.outbox.Add(ctx, outbox.Event{
			Topic: Topic, AggregateID: strconv.FormatInt(r.ID, 10), Type: EventRegistered,
			Payload: Registered{UserID: r.ID, Via: via, OccurredAt: r.CreatedAt},
		})
	})
}

// Login checks a password. Unknown emails cost the same hash as wrong passwords, failures
// are counted per account and per client IP, and either limit answers 429 before any hash.
func (s *service) Login(ctx context.Context, email, password, ip string) (Tokens, error) {
	email = normalizeEmail(email)
	if err := s.guard.check(ctx, email, ip); err != nil {
		return Tokens{}, err
	}
	row, err := s.st.userByEmail(ctx, email)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Tokens{}, err
	}
	// row.PasswordHash is "" for an unknown email or an account without a password; Verify
	// then checks against its dummy hash, so every failure takes one hash.
	ok, rehash, err := s.hash.Verify(ctx, row.PasswordHash.String, password)
	if err != nil {
		return Tokens{}, err
	}
	if !ok {
		s.guard.fail(ctx, email, ip)
		return Tokens{}, ErrInvalidCredentials
	}
	s.guard.succeed(ctx, email)
	if rehash {
		s.upgradeHash(ctx, row.ID, password)
	}
	return s.startSession(ctx, row.ID)
}

// upgradeHash re-hashes a password stored with older parameters; failing only costs the
// upgrade, so it is logged rather than returned.
func (s *service) upgradeHash(ctx context.Context, userID int64, password string) {
	h, err := s.hash.Hash(ctx, password)
	if err == nil {
		err = s.st.setPassword(ctx, userID, h, s.clock())
	}
	if err != nil {
		s.log.WarnContext(ctx, "user: password hash upgrade failed", "user_id", userID, "error", err.Error())
	}
}

// startSession opens a refresh-token family and issues the first pair.
func (s *service) startSession(ctx context.Context, userID int64) (Tokens, error) {
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
func (s *service) issueAccess(ctx context.Context, userID, sessionID int64) (string, error) {
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
func (s *service) Refresh(ctx context.Context, token string) (Tokens, error) {
	hash, ok := hashRefreshToken(token)
	if !ok {
		return Tokens{}, ErrInvalidRefreshToken
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

// revokeSession revokes a refresh family and deny-lists its access tokens for as long as
// any of them can live.
func (s *service) revokeSession(ctx context.Context, userID, familyID int64) error {
	if err := s.st.revokeFamily(ctx, familyID); err != nil {
		return err
	}
	if err := s.deny.deny(ctx, s.cfg.JWT.AccessTTL+clockLeeway, denySessionKey(userID, strconv.FormatInt(familyID, 10))); err != nil {
		s.log.WarnContext(ctx, "user: session deny-list not written to redis (kept in process)", "error", err.Error())
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
func (s *service) Logout(ctx context.Context, refreshToken string) error {
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

// Third-party login.

// LoginWithIdentity implements Service.
func (s *service) LoginWithIdentity(ctx context.Context, id ExternalIdentity) (Tokens, error) {
	if id.Provider == "" || id.Subject == "" || len(id.Provider) > 64 || len(id.Subject) > 255 {
		return Tokens{}, ErrOAuthFailed.WithDetail("the provider returned no usable subject")
	}
	// A race between two first logins of one identity (or with a registration of the same
	// email) loses on a unique key; the retry then finds what the winner created.
	for attempt := 0; ; attempt++ {
		uid, err := s.st.identity(ctx, id.Provider, id.Subject)
		if err == nil {
			return s.startSession(ctx, uid)
		}
		if !errors.Is(err, ErrNotFound) {
			return Tokens{}, err
		}
		uid, err = s.linkOrCreate(ctx, id)
		if (errors.Is(err, errIdentityTaken) || errors.Is(err, ErrEmailTaken)) && attempt < 2 {
			continue
		}
		if err != nil {
			return Tokens{}, err
		}
		return s.startSession(ctx, uid)
	}
}

// linkOrCreate links the identity to the account with its verified email, or creates an
// account. An unverified email neither links nor is stored on the new account (it would
// block the real owner from registering it).
func (s *service) linkOrCreate(ctx context.Context, id ExternalIdentity) (int64, error) {
	now := s.clock()
	var email sql.NullString
	if e := normalizeEmail(id.Email); id.EmailVerified && validEmail(e) {
		email = sql.NullString{String: e, Valid: true}
	}
	if email.Valid {
		row, err := s.st.userByEmail(ctx, email.String)
		if err == nil {
			return row.ID, s.st.insertIdentity(ctx, id.Provider, id.Subject, row.ID, email, now)
		}
		if !errors.Is(err, ErrNotFound) {
			return 0, err
		}
	}
	nick, ok := cleanText(id.Name, maxNickname)
	if !ok || nick == "" {
		nick = defaultNickname(email.String)
	}
	r := userRow{ID: s.newUserID(), Email: email, Nickname: nick, CreatedAt: now, UpdatedAt: now}
	err := s.createUser(ctx, r, "oidc:"+id.Provider, func(ctx context.Context) error {
		return s.st.insertIdentity(ctx, id.Provider, id.Subject, r.ID, email, now)
	})
	return r.ID, err
}

// Accounts.

// Get implements Service.
func (s *service) Get(ctx context.Context, id int64) (User, error) {
	r, err := s.st.userByID(ctx, id)
	if err != nil {
		return User{}, err
	}
	return r.user(), nil
}

// FindByEmail implements Service.
func (s *service) FindByEmail(ctx context.Context, email string) (User, error) {
	e := normalizeEmail(email)
	if !validEmail(e) {
		return User{}, ErrNotFound
	}
	r, err := s.st.userByEmail(ctx, e)
	if err != nil {
		return User{}, err
	}
	return r.user(), nil
}

// profile is Get through a short-lived in-process cache: /me runs on every page load, and
// a user's email and nickname have no update path yet.
func (s *service) profile(ctx context.Context, id int64) (User, error) {
	if u, ok := s.profiles.get(id); ok {
		return u, nil
	}
	u, err := s.Get(ctx, id)
	if err != nil {
		return User{}, err
	}
	s.profiles.put(u)
	return u, nil
}

// Roles implements Service.
func (s *service) Roles(ctx context.Context, userID int64) ([]RoleBinding, error) {
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
func (s *service) listUsers(ctx context.Context, email string, before int64, limit int) ([]userWithRoles, error) {
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

// GrantRole implements Service; the caller in ctx, if any, is recorded as the grantor.
func (s *service) GrantRole(ctx context.Context, userID int64, role Role, merchantID int64) error {
	grantedBy := authn.UserID(ctx)
	now := s.clock()
	return s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		if err := s.st.lockUser(ctx, userID); err != nil {
			return err
		}
		if role == RoleBuyer {
			if merchantID != 0 {
				return ErrMerchantNotAllowed.WithDetail("buyer is not a merchant role")
			}
			return nil // everyone is a buyer
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
func (s *service) RevokeRole(ctx context.Context, userID int64, role Role, merchantID int64) error {
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
	return s.endSessions(ctx, userID)
}

// endSessions revokes every refresh family of the user and denies their access tokens.
func (s *service) endSessions(ctx context.Context, userID int64) error {
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

// Addresses.

// addressInput is a new address or, with nil fields left alone, a change to one.
type addressInput struct {
	Name, Phone, Province, City, District, Detail *string
}

const (
	maxAddrField  = 64
	maxAddrDetail = 255
)

// normalizePhone drops spaces and dashes and accepts an optional + and 6 to 20 digits.
func normalizePhone(p string) (string, bool) {
	p = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, strings.TrimSpace(p))
	digits := strings.TrimPrefix(p, "+")
	if len(digits) < 6 || len(digits) > 20 {
		return p, false
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return p, false
		}
	}
	return p, true
}

// apply validates in over a (a new or stored address) and returns the result.
func (in addressInput) apply(a Address, creating bool) (Address, error) {
	var fields []errs.FieldError
	text := func(field string, v *string, max int, dst *string) {
		if v == nil {
			if creating {
				fields = append(fields, errs.FieldError{Field: field, Message: "is required"})
			}
			return
		}
		s, ok := cleanText(*v, max)
		switch {
		case !ok:
			fields = append(fields, errs.FieldError{Field: field, Message: fmt.Sprintf("must have at most %d characters and no control characters", max)})
		case s == "":
			fields = append(fields, errs.FieldError{Field: field, Message: "is required"})
		default:
			*dst = s
		}
	}
	text("name", in.Name, maxAddrField, &a.Name)
	if in.Phone != nil {
		if p, ok := normalizePhone(*in.Phone); ok {
			a.Phone = p
		} else {
			fields = append(fields, errs.FieldError{Field: "phone", Message: "must be 6 to 20 digits, optionally after +"})
		}
	} else if creating {
		fields = append(fields, errs.FieldError{Field: "phone", Message: "is required"})
	}
	text("province", in.Province, maxAddrField, &a.Province)
	text("city", in.City, maxAddrField, &a.City)
	text("district", in.District, maxAddrField, &a.District)
	text("detail", in.Detail, maxAddrDetail, &a.Detail)
	if len(fields) > 0 {
		names := make([]string, len(fields))
		for i, f := range fields {
			names[i] = f.Field
		}
		return a, errs.ErrValidation.WithDetail("invalid fields: %s", strings.Join(names, ", ")).WithFields(fields...)
	}
	return a, nil
}

func (s *service) toRow(a Address) addressRow {
	return addressRow{ID: a.ID, UserID: a.UserID, Name: a.Name, PhoneEnc: s.phones.seal(a.Phone, a.ID),
		Province: a.Province, City: a.City, District: a.District, Detail: a.Detail, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}

func (s *service) fromRow(r addressRow) (Address, error) {
	phone, err := s.phones.open(r.PhoneEnc, r.ID)
	if err != nil {
		return Address{}, fmt.Errorf("address %d: %w", r.ID, err)
	}
	return Address{ID: r.ID, UserID: r.UserID, Name: r.Name, Phone: phone, Province: r.Province, City: r.City,
		District: r.District, Detail: r.Detail, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}, nil
}

// AddAddress stores a new address on the user's shard; its ID carries the shard.
func (s *service) AddAddress(ctx context.Context, userID int64, in addressInput) (Address, error) {
	now := s.clock()
	a, err := in.apply(Address{ID: s.ids.Next(sqldb.LogicalShard(userID)), UserID: userID, CreatedAt: now, UpdatedAt: now}, true)
	if err != nil {
		return Address{}, err
	}
	err = s.cl.ForUser(userID).WithinTx(ctx, func(ctx context.Context) error {
		n, err := s.st.countAddresses(ctx, userID) // locks the user's range: the limit holds under races
		if err != nil {
			return err
		}
		if n >= MaxAddresses {
			return ErrAddressLimit.WithDetail("at most %d addresses; delete one first", MaxAddresses)
		}
		return s.st.insertAddress(ctx, s.toRow(a))
	})
	if err != nil {
		return Address{}, err
	}
	return a, nil
}

// UpdateAddress changes the fields set in in.
func (s *service) UpdateAddress(ctx context.Context, userID, addressID int64, in addressInput) (Address, error) {
	var out Address
	err := s.cl.ForUser(userID).WithinTx(ctx, func(ctx context.Context) error {
		r, err := s.st.address(ctx, userID, addressID)
		if err != nil {
			return err
		}
		a, err := s.fromRow(r)
		if err != nil {
			return err
		}
		if a, err = in.apply(a, false); err != nil {
			return err
		}
		a.UpdatedAt = s.clock()
		out = a
		return s.st.updateAddress(ctx, s.toRow(a))
	})
	return out, err
}

// DeleteAddress removes one of the user's addresses.
func (s *service) DeleteAddress(ctx context.Context, userID, addressID int64) error {
	return s.st.deleteAddress(ctx, userID, addressID)
}

// ListAddresses returns up to limit addresses with ID below before, newest first.
func (s *service) ListAddresses(ctx context.Context, userID, before int64, limit int) ([]Address, error) {
	rows, err := s.st.addresses(ctx, userID, before, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Address, 0, len(rows))
	for _, r := range rows {
		a, err := s.fromRow(r)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Address implements Service.
func (s *service) Address(ctx context.Context, userID, addressID int64) (Address, error) {
	r, err := s.st.address(ctx, userID, addressID)
	if err != nil {
		return Address{}, err
	}
	return s.fromRow(r)
}

// LatestAddress implements Service.
func (s *service) LatestAddress(ctx context.Context, userID int64) (Address, error) {
	as, err := s.ListAddresses(ctx, userID, 0, 1)
	if err != nil {
		return Address{}, err
	}
	if len(as) == 0 {
		return Address{}, ErrAddressNotFound
	}
	return as[0], nil
}
