package user

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/mail"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/worker"
)

// E-mail ownership (ADR 0029). An address hands out access only once its owner has proved it
// with a token mailed to it: a random 256-bit token, stored as its SHA-256, single use, with
// an expiry, bound to the address it was sent to. Mails go through an outbox: the request's
// transaction writes a user_mail_queue row, the mailer worker creates the token, sends and
// marks the row, so a registration never waits for SMTP and a crash never loses a mail.

// EmailConfig is auth.email.*.
type EmailConfig struct {
	VerifyTTL time.Duration `mapstructure:"verify_ttl" validate:"min=10m,max=720h"`
	ResetTTL  time.Duration `mapstructure:"reset_ttl" validate:"min=5m,max=24h"`
	// UnverifiedCanShop lets accounts sign in (and so shop) before they verify; roles need a
	// verified address either way.
	UnverifiedCanShop bool `mapstructure:"unverified_can_shop"`
	// MailsPerHour bounds the verification and reset mails one address receives per hour.
	MailsPerHour int `mapstructure:"mails_per_hour" validate:"min=1,max=100"`
	// LinkBaseURL is the storefront's origin; mails link to <base>/verify-email?token=...
	LinkBaseURL string `mapstructure:"link_base_url" validate:"omitempty,url,max=255"`
}

// Mail kinds, also the purposes of their tokens.
const (
	mailVerify = "verify"
	mailReset  = "reset"
)

const (
	mailBatch       = 20
	mailLease       = time.Minute // a claimed row is due again after this if its sender died
	mailMaxAttempts = 12          // about a day of backoff, then the row is dead
	mailInterval    = 2 * time.Second
	mailKeep        = 7 * 24 * time.Hour // sent and dead rows kept for support, then deleted
)

// mailer queues mails in the caller's transaction and sends them from a worker.
type mailer struct {
	cfg    EmailConfig
	log    *slog.Logger
	st     *store
	ids    *idgen.Generator
	send   mail.Sender
	rdb    redis.UniversalClient
	wake   chan struct{}
	now    func() time.Time
	warned sync.Once
}

func newMailer(cfg EmailConfig, log *slog.Logger, st *store, ids *idgen.Generator, send mail.Sender, rdb redis.UniversalClient) *mailer {
	if send == nil {
		send, _ = mail.New(mail.Config{}, log)
	}
	return &mailer{cfg: cfg, log: log, st: st, ids: ids, send: send, rdb: rdb, wake: make(chan struct{}, 1), now: time.Now}
}

func (m *mailer) clock() time.Time { return m.now().UTC().Truncate(time.Microsecond) }

// enqueue writes a mail row; call it inside the transaction that asks for the mail.
func (m *mailer) enqueue(ctx context.Context, kind string, userID int64, email string) error {
	return m.st.enqueueMail(ctx, m.ids.Next(sqldb.LogicalShard(userID)), kind, userID, email, m.clock())
}

// nudge wakes this replica's worker after a commit; the others find the row at their next poll.
func (m *mailer) nudge() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// mailRateScript increments a counter and starts its window with the first count.
var mailRateScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`)

// allow counts a mail to email against auth.email.mails_per_hour. When Redis is down it
// allows: the per-IP limit of the route still holds, and a lost reset mail is worse.
func (m *mailer) allow(ctx context.Context, email string) bool {
	if m.rdb == nil {
		return true
	}
	h := sha256.Sum256([]byte(email))
	key := redisPrefix + "mailrate:" + hex.EncodeToString(h[:16])
	n, err := mailRateScript.Run(ctx, m.rdb, []string{key}, time.Hour.Milliseconds()).Int()
	if err != nil {
		m.log.WarnContext(ctx, "user: mail rate counter unavailable; allowing", "error", err.Error())
		return true
	}
	return n <= m.cfg.MailsPerHour
}

// run sends the due mails: one claim of up to mailBatch rows at a time until none is due.
func (m *mailer) run(ctx context.Context) error {
	if !m.send.Configured() {
		m.warned.Do(func() {
			m.log.Warn("user: mail.smtp_addr is not set: verification and reset mails stay queued, none is sent")
		})
		return nil
	}
	for ctx.Err() == nil {
		now := m.clock()
		rows, err := m.st.claimMail(ctx, now, now.Add(mailLease), mailBatch)
		if err != nil {
			return fmt.Errorf("user: claiming mails: %w", err)
		}
		for _, r := range rows {
			m.deliver(ctx, r)
		}
		if len(rows) < mailBatch {
			return nil
		}
	}
	return nil
}

// deliver creates the row's token, sends it and records the outcome. A failed send deletes
// its token and retries with backoff; the row is dead after mailMaxAttempts.
func (m *mailer) deliver(ctx context.Context, r mailRow) {
	now := m.clock()
	u, err := m.st.userByID(ctx, r.UserID)
	switch {
	case errors.Is(err, ErrNotFound) || (err == nil && u.Email.String != r.Email):
		m.finish(ctx, r, mailSent, "skipped: the account no longer has this address")
		return
	case err != nil:
		m.retry(ctx, r, err)
		return
	case r.Kind == mailVerify && u.EmailVerifiedAt.Valid:
		m.finish(ctx, r, mailSent, "skipped: already verified")
		return
	}
	ttl := m.cfg.VerifyTTL
	if r.Kind == mailReset {
		ttl = m.cfg.ResetTTL
	}
	token, hash := newRefreshToken() // the same 256-bit random, SHA-256-stored form
	if err := m.st.insertEmailToken(ctx, hash, r.Kind, r.UserID, r.Email, now.Add(ttl), now); err != nil {
		m.retry(ctx, r, err)
		return
	}
	if err := m.send.Send(ctx, m.render(r, token, ttl)); err != nil {
		if derr := m.st.deleteEmailToken(context.WithoutCancel(ctx), hash); derr != nil {
			m.log.WarnContext(ctx, "user: unsent token not deleted (it expires)", "error", derr.Error())
		}
		m.retry(ctx, r, err)
		return
	}
	m.finish(ctx, r, mailSent, "")
}

func (m *mailer) finish(ctx context.Context, r mailRow, status int, note string) {
	if err := m.st.mailDone(context.WithoutCancel(ctx), r.ID, status, m.clock(), note); err != nil {
		// The lease runs out and the mail goes again: at least once, never lost.
		m.log.WarnContext(ctx, "user: mail state not recorded", "mail_id", r.ID, "error", err.Error())
	}
}

func (m *mailer) retry(ctx context.Context, r mailRow, cause error) {
	status, at := mailPending, m.clock().Add(min(5*time.Second<<min(r.Attempts, 20), time.Hour))
	if r.Attempts >= mailMaxAttempts {
		status = mailDead
		m.log.ErrorContext(ctx, "user: mail given up", "mail_id", r.ID, "kind", r.Kind, "user_id", r.UserID, "error", cause.Error())
	} else {
		m.log.WarnContext(ctx, "user: mail not sent; retrying", "mail_id", r.ID, "attempt", r.Attempts, "error", cause.Error())
	}
	if err := m.st.mailRetry(context.WithoutCancel(ctx), r.ID, at, status, cause.Error()); err != nil {
		m.log.WarnContext(ctx, "user: mail retry not recorded", "mail_id", r.ID, "error", err.Error())
	}
}

// TokenLinePrefix starts the line of a mail that carries the token.
const TokenLinePrefix = "Code: "

func (m *mailer) render(r mailRow, token string, ttl time.Duration) mail.Message {
	var subject, intro, path string
	switch r.Kind {
	case mailReset:
		subject, path = "Reset your Mall password", "/reset-password"
		intro = "Someone (hopefully you) asked to reset the password of the Mall account with this address.\n" +
			"Setting a new password signs the account out everywhere."
	default:
		subject, path = "Confirm your e-mail address for Mall", "/verify-email"
		intro = "Someone (hopefully you) created a Mall account with this address. Confirm that it is yours."
	}
	var b strings.Builder
	b.WriteString("Hello,\n\n" + intro + "\n\n")
	if m.cfg.LinkBaseURL != "" {
		b.WriteString("Open " + strings.TrimRight(m.cfg.LinkBaseURL, "/") + path + "?token=" + url.QueryEscape(token) + "\nor enter the code below.\n\n")
	}
	b.WriteString(TokenLinePrefix + token + "\n\n")
	b.WriteString("The code works once and expires in " + humanDuration(ttl) + ". If this was not you, ignore this message.\n")
	return mail.Message{To: r.Email, Subject: subject, Text: b.String()}
}

func humanDuration(d time.Duration) string {
	if d >= time.Hour && d%time.Hour == 0 {
		return strconv.Itoa(int(d/time.Hour)) + " hours"
	}
	return strconv.Itoa(int(d/time.Minute)) + " minutes"
}

// janitor deletes expired tokens and old sent or dead mails.
func (m *mailer) janitor(ctx context.Context) error {
	now := m.clock()
	for ctx.Err() == nil {
		n, err := m.st.deleteExpiredEmailTokens(ctx, now, janitorBatch)
		if err != nil {
			return fmt.Errorf("user: deleting expired e-mail tokens: %w", err)
		}
		if n < janitorBatch {
			break
		}
	}
	for ctx.Err() == nil {
		n, err := m.st.deleteOldMail(ctx, now.Add(-mailKeep), janitorBatch)
		if err != nil {
			return fmt.Errorf("user: deleting old mails: %w", err)
		}
		if n < janitorBatch {
			return nil
		}
	}
	return nil
}

func mailWorker(s *service) worker.Spec {
	return worker.Spec{Name: "user.mailer", Interval: mailInterval, RunAtStart: true, Trigger: s.emails.mail.wake,
		Timeout: 5 * time.Minute, Run: s.emails.mail.run}
}

func mailJanitor(s *service) worker.Spec {
	return worker.Spec{Name: "user.mail_janitor", Interval: janitorInterval, Run: s.emails.mail.janitor}
}

// emails verifies addresses and resets passwords with mailed tokens.
type emails struct {
	mail     *mailer
	st       *store
	cl       *sqldb.Cluster
	hash     *hasher
	sessions *sessions
	profiles *profileCache
	now      func() time.Time
}

func (s *emails) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// VerifyEmail consumes a verification token and marks its address verified.
func (s *emails) VerifyEmail(ctx context.Context, token string) error {
	hash, ok := hashRefreshToken(token)
	if !ok {
		return ErrEmailTokenInvalid
	}
	var uid int64
	err := s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		u, err := s.useToken(ctx, hash, mailVerify)
		if err != nil {
			return err
		}
		uid = u.ID
		return s.st.setVerified(ctx, u.ID, s.clock())
	})
	if err == nil {
		s.profiles.drop(uid)
	}
	return err
}

// useToken takes a token of purpose inside the transaction in ctx and returns its user,
// locked; every other token of that purpose of the user goes with it.
func (s *emails) useToken(ctx context.Context, hash [32]byte, purpose string) (userRow, error) {
	t, err := s.st.takeEmailToken(ctx, hash)
	if err != nil {
		return userRow{}, err
	}
	if t.Purpose != purpose || !s.clock().Before(t.ExpiresAt) {
		return userRow{}, ErrEmailTokenInvalid
	}
	u, err := s.st.userForUpdate(ctx, t.UserID)
	if errors.Is(err, ErrNotFound) || (err == nil && u.Email.String != t.Email) {
		return userRow{}, ErrEmailTokenInvalid
	}
	if err != nil {
		return userRow{}, err
	}
	return u, s.st.deleteUserTokens(ctx, u.ID, purpose)
}

// ResendVerification queues another verification mail for an unverified account with this
// address. It says nothing about whether there is one.
func (s *emails) ResendVerification(ctx context.Context, email string) error {
	return s.request(ctx, email, mailVerify)
}

// ForgotPassword queues a reset mail for the account with this address, if there is one. It
// says nothing about whether there is one.
func (s *emails) ForgotPassword(ctx context.Context, email string) error {
	return s.request(ctx, email, mailReset)
}

func (s *emails) request(ctx context.Context, email, kind string) error {
	email = normalizeEmail(email)
	if !validEmail(email) {
		return nil
	}
	u, err := s.st.userByEmail(ctx, email)
	if errors.Is(err, ErrNotFound) || (err == nil && kind == mailVerify && u.EmailVerifiedAt.Valid) {
		return nil
	}
	if err != nil {
		return err
	}
	if !s.mail.allow(ctx, email) {
		return nil
	}
	if err := s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		return s.mail.enqueue(ctx, kind, u.ID, email)
	}); err != nil {
		return err
	}
	s.mail.nudge()
	return nil
}

// ResetPassword consumes a reset token, sets the password and ends every session of the
// user: every refresh family revoked, their access tokens deny-listed. Proving the address
// this way also verifies it.
func (s *emails) ResetPassword(ctx context.Context, token, password string) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	hash, ok := hashRefreshToken(token)
	if !ok {
		return ErrEmailTokenInvalid
	}
	// Hash first (the slow part), outside the transaction and its row locks.
	ph, err := s.hash.Hash(ctx, password)
	if err != nil {
		return err
	}
	var uid int64
	err = s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		u, err := s.useToken(ctx, hash, mailReset)
		if err != nil {
			return err
		}
		uid = u.ID
		now := s.clock()
		if err := s.st.setPasswordHash(ctx, u.ID, ph, now); err != nil {
			return err
		}
		return s.st.setVerified(ctx, u.ID, now)
	})
	if err != nil {
		return err
	}
	s.profiles.drop(uid)
	// After the commit: a refresh racing with the reset either rotated before (its family is
	// live and revoked here) or finds its family revoked.
	return s.sessions.endSessions(ctx, uid)
}

// drop forgets a user whose account changed (verified, new password).
func (c *profileCache) drop(id int64) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// checkCanSignIn refuses a session to an unverified account when
// auth.email.unverified_can_shop is off.
func (s *sessions) checkCanSignIn(ctx context.Context, userID int64) error {
	if s.cfg.Email.UnverifiedCanShop {
		return nil
	}
	u, err := s.st.userByID(ctx, userID)
	if err != nil {
		return err
	}
	if !u.user().EmailVerified {
		return ErrLoginUnverified.WithDetail("confirm your e-mail address with the code we sent first")
	}
	return nil
}
