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

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// accounts registers users, checks passwords and resolves third-party identities to
// accounts; both logins then open a session.
type accounts struct {
	log    *slog.Logger
	st     *store
	cl     *sqldb.Cluster
	ids    *idgen.Generator
	outbox outbox.Writer
	hash   *hasher
	guard  *loginGuard
	blocks *blockList // nil outside the server (EnsureAdmin)
	// checks counts passwords verified (mall_user_password_checks_total): what got past
	// the login guard.
	checks   prometheus.Counter
	profiles *profileCache
	sessions *sessions
	// mail queues the verification mail of a registration; nil for accounts the operator's
	// CLI creates, which are verified.
	mail *mailer
	now  func() time.Time
}

func (s *accounts) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// newUserID spreads users over the logical shards at random; the ID carries its shard, so
// user_id mod 1024 is that shard.
func (s *accounts) newUserID() int64 { return s.ids.Next(rand.IntN(sqldb.LogicalShards)) }

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
func (s *accounts) Register(ctx context.Context, email, password, nickname string) (User, error) {
	return s.register(ctx, email, password, nickname, "password")
}

func (s *accounts) register(ctx context.Context, email, password, nickname, via string) (User, error) {
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
	var then []func(context.Context) error
	if via == viaAdminCLI {
		// The operator typed the address and holds the password: nobody else can hold this account.
		r.EmailVerifiedAt = sql.NullTime{Time: now, Valid: true}
	} else if s.mail != nil {
		then = append(then, func(ctx context.Context) error { return s.mail.enqueue(ctx, mailVerify, r.ID, email) })
	}
	if err := s.createUser(ctx, r, via, then...); err != nil {
		return User{}, err
	}
	if s.mail != nil {
		s.mail.nudge()
	}
	return r.user(), nil
}

// viaAdminCLI is the Registered.Via of accounts `mall admin create` makes.
const viaAdminCLI = "admin_cli"

// createUser inserts the row and its user.registered event in one transaction.
func (s *accounts) createUser(ctx context.Context, r userRow, via string, then ...func(ctx context.Context) error) error {
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

// Login checks a password. Unknown emails cost the same hash as wrong passwords; every
// attempt is reserved with the login guard before the hash (429 when a limit is used up), a
// wrong password keeps its reservation, a success settles it.
func (s *accounts) Login(ctx context.Context, email, password, ip string) (Tokens, error) {
	email = normalizeEmail(email)
	ticket, err := s.guard.reserve(ctx, email, ip)
	if err != nil {
		return Tokens{}, err
	}
	row, ok, rehash, err := s.checkPassword(ctx, email, password)
	if err != nil {
		s.guard.refund(ctx, ticket)
		return Tokens{}, err
	}
	if !ok {
		return Tokens{}, ErrInvalidCredentials
	}
	s.guard.succeed(ctx, ticket)
	if rehash {
		s.upgradeHash(ctx, row.ID, password)
	}
	if s.blocks != nil {
		// After the password: a blocked account is no hint to someone who does not know it.
		if err := s.blocks.checkUser(row.ID); err != nil {
			return Tokens{}, err
		}
	}
	return s.sessions.startSession(ctx, row.ID)
}

// checkPassword verifies password against the account with email. row.PasswordHash is ""
// for an unknown email or an account without a password; Verify then checks against its
// dummy hash, so every failure takes one hash.
func (s *accounts) checkPassword(ctx context.Context, email, password string) (userRow, bool, bool, error) {
	if s.checks != nil {
		s.checks.Inc()
	}
	row, err := s.st.userByEmail(ctx, email)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return row, false, false, err
	}
	ok, rehash, err := s.hash.Verify(ctx, row.PasswordHash.String, password)
	return row, ok, rehash, err
}

// upgradeHash re-hashes a password stored with older parameters; failing only costs the
// upgrade, so it is logged rather than returned.
func (s *accounts) upgradeHash(ctx context.Context, userID int64, password string) {
	h, err := s.hash.Hash(ctx, password)
	if err == nil {
		err = s.st.setPassword(ctx, userID, h, s.clock())
	}
	if err != nil {
		s.log.WarnContext(ctx, "user: password hash upgrade failed", "user_id", userID, "error", err.Error())
	}
}

// Third-party login.

// LoginWithIdentity implements Service.
func (s *accounts) LoginWithIdentity(ctx context.Context, id ExternalIdentity) (Tokens, error) {
	if id.Provider == "" || id.Subject == "" || len(id.Provider) > 64 || len(id.Subject) > 255 {
		return Tokens{}, ErrOAuthFailed.WithDetail("the provider returned no usable subject")
	}
	// A race between two first logins of one identity (or with a registration of the same
	// email) loses on a unique key; the retry then finds what the winner created.
	for attempt := 0; ; attempt++ {
		uid, err := s.st.identity(ctx, id.Provider, id.Subject)
		if err == nil {
			return s.sessions.startSession(ctx, uid)
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
		return s.sessions.startSession(ctx, uid)
	}
}

// linkOrCreate links the identity to the account with its verified email, or creates an
// account. An unverified email neither links nor is stored on the new account (it would
// block the real owner from registering it). Linking by email needs an account whose address
// is verified and that has no password: anyone can register a password account with someone
// else's address, and linking would let them share the real owner's account. Any other
// account with the address answers ErrLinkRequired: its owner signs in and links explicitly.
func (s *accounts) linkOrCreate(ctx context.Context, id ExternalIdentity) (int64, error) {
	now := s.clock()
	var email sql.NullString
	if e := normalizeEmail(id.Email); id.EmailVerified && validEmail(e) {
		email = sql.NullString{String: e, Valid: true}
	}
	if email.Valid {
		row, err := s.st.userByEmail(ctx, email.String)
		if err == nil {
			if !row.EmailVerifiedAt.Valid || row.PasswordHash.Valid {
				return 0, ErrLinkRequired.WithDetail("an account with this e-mail exists: sign in to it and link the provider at POST /api/v1/me/identities/%s/link",
					id.Provider)
			}
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
	if email.Valid { // the provider vouches for it
		r.EmailVerifiedAt = sql.NullTime{Time: now, Valid: true}
	}
	err := s.createUser(ctx, r, "oidc:"+id.Provider, func(ctx context.Context) error {
		return s.st.insertIdentity(ctx, id.Provider, id.Subject, r.ID, email, now)
	})
	return r.ID, err
}

// Lookups.

// Get implements Service.
func (s *accounts) Get(ctx context.Context, id int64) (User, error) {
	r, err := s.st.userByID(ctx, id)
	if err != nil {
		return User{}, err
	}
	return r.user(), nil
}

// FindByEmail implements Service.
func (s *accounts) FindByEmail(ctx context.Context, email string) (User, error) {
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
func (s *accounts) profile(ctx context.Context, id int64) (User, error) {
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
