package user

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/idgen"
	mlog "github.com/mallhq/mall/internal/platform/log"
	"github.com/mallhq/mall/internal/platform/mail"
	"github.com/mallhq/mall/internal/platform/metrics"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/ratelimit"
	"github.com/mallhq/mall/internal/platform/realtime"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/worker"
	"github.com/mallhq/mall/internal/user/oidc"
)

//go:embed migrations/main/*.sql migrations/shard/*.sql
var migrationFiles embed.FS

// Migrations of the module: accounts, tokens, roles and identities on db.main; addresses on
// every shard. The composition root lists both.
var (
	Migrations      = sqldb.Embedded("user", migrationFiles, "migrations/main", sqldb.OnMain)
	ShardMigrations = sqldb.Embedded("user_shard", migrationFiles, "migrations/shard", sqldb.OnShards)
)

// Module provides Service, the HTTP routes, the authentication middleware (global) and the
// login-required check (per Auth route), and runs the key reloader and the refresh-token
// janitor.
var Module = fx.Module("user",
	fx.Provide(
		ConfigSection.From,
		newService,
		func(s *service) Service { return s },
		newOIDC,
		httpx.AsRoutes(newHandler),
		httpx.AsMiddleware(func(s *service) httpx.Middleware { return s.authMiddleware() }),
		httpx.AsMiddleware(func(s *service) httpx.Middleware { return s.blocks.middleware() }),
		httpx.AsRoutes(newBlockHandler),
		httpx.AsRouteMiddleware(requireLogin),
	),
	fx.Provide(worker.As(keyReloader), worker.As(refreshJanitor), worker.As(blocksReloader), worker.As(mailWorker),
		worker.As(mailJanitor)),
	fx.Invoke(runLifecycle),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("module", "user") }),
	// The module's own database handles: no other module's call joins its transactions.
	fx.Decorate(func(c *sqldb.Cluster) *sqldb.Cluster { return c.For("user") }),
)

// newOIDC builds the third-party login client for auth.oidc; it makes no network calls
// (providers are discovered on first use).
func newOIDC(cfg Config, rdb redis.UniversalClient) (*oidc.Client, error) {
	return oidc.New(context.Background(), cfg.OIDC, rdb, nil)
}

// Params is what New needs.
type Params struct {
	fx.In

	Config Config
	DB     *sqldb.Cluster
	IDs    *idgen.Generator
	Redis  redis.UniversalClient
	Outbox outbox.Writer
	Log    *slog.Logger
	// Password overrides DefaultPasswordParams (tests use cheap ones).
	Password *PasswordParams `optional:"true"`
	// Limiter limits refreshes per session and knows ratelimit.trusted_clients; nil: no
	// refresh limit, nobody trusted.
	Limiter *ratelimit.Limiter `optional:"true"`
	// Hub closes WebSockets when sessions end or users are blocked; nil: none to close.
	Hub *realtime.Hub `optional:"true"`
	// Registerer receives the module's metrics; nil: not exported.
	Registerer prometheus.Registerer `optional:"true"`
	// Mail sends verification and reset mails; nil: none is sent (they stay queued).
	Mail mail.Sender `optional:"true"`
}

// New returns the Service. It loads the token signing keys (generating one when
// auth.jwt.generate_key is set and the directory has none).
func New(p Params) (Service, error) {
	s, err := newService(p)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func newService(p Params) (*service, error) {
	a := p.Config
	if p.DB == nil || p.IDs == nil || p.Redis == nil {
		return nil, errors.New("user: DB, IDs and Redis are required")
	}
	p.DB = p.DB.For("user") // the module's own handles, also without fx
	log, ob := mlog.OrDiscard(p.Log), outbox.WriterOr(p.Outbox)
	params := DefaultPasswordParams
	if p.Password != nil {
		params = *p.Password
	}
	h, err := newHasher(params, a.Password.MaxConcurrentHashes)
	if err != nil {
		return nil, err
	}
	keys, err := newKeyring(a.JWT.KeysDir, a.JWT.GenerateKey)
	if err != nil {
		return nil, err
	}
	phones, err := newPhoneCipher(a.EncryptionKey)
	if err != nil {
		return nil, err
	}
	st := &store{cl: p.DB}
	now := time.Now
	mq := newMailer(a.Email, log, st, p.IDs, p.Mail, p.Redis)
	profiles := &profileCache{}
	var ender connEnder
	if p.Hub != nil {
		ender = p.Hub
	}
	var trusted func(string) bool
	if p.Limiter != nil {
		trusted = p.Limiter.Trusted
		if err := p.Limiter.Register(ratelimit.Class{Name: refreshClass, Limit: ratelimit.PerMinute(a.RefreshPerMinute),
			Fallback: true}); err != nil && !p.Limiter.Has(refreshClass) {
			return nil, err
		}
	}
	reg := p.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	checks, err := metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: MetricPasswordChecks,
		Help: "Passwords verified at login (attempts the login guard let through)."}))
	if err != nil {
		return nil, err
	}
	sess := &sessions{
		cfg:     a,
		log:     log,
		st:      st,
		cl:      p.DB,
		ids:     p.IDs,
		tokens:  newTokenIssuer(keys, a.JWT.Issuer, a.JWT.Audience, a.JWT.AccessTTL, now),
		deny:    newDenyList(p.Redis, log),
		limiter: p.Limiter,
		ender:   ender,
		now:     now,
	}
	blocks := &blockList{st: st, ids: p.IDs, rdb: p.Redis, log: log, now: now, ender: ender, ses: sess,
		channel: blocksChannel, trigger: make(chan struct{}, 1)}
	sess.blocks = blocks
	lim := a.Login
	return &service{
		accounts: &accounts{
			log:    log,
			st:     st,
			cl:     p.DB,
			ids:    p.IDs,
			outbox: ob,
			hash:   h,
			guard: newLoginGuard(p.Redis, log, loginLimits{Window: lim.Window, MaxFailuresPerAccountIP: lim.MaxFailuresPerAccountIP,
				MaxFailuresPerIP: lim.MaxFailuresPerIP, MaxFailuresPerAccount: lim.MaxFailuresPerAccount, FreeFailures: lim.FreeFailures,
				DelayBase: lim.DelayBase, DelayMax: lim.DelayMax, KnownIPTTL: lim.KnownIPTTL}, trusted),
			blocks:   blocks,
			checks:   checks,
			profiles: profiles,
			sessions: sess,
			mail:     mq,
			now:      now,
		},
		sessions: sess,
		roles: &roles{
			roleCache: &roleCache{st: st, log: log},
			st:        st,
			cl:        p.DB,
			outbox:    ob,
			sessions:  sess,
			now:       now,
		},
		addresses: &addresses{st: st, cl: p.DB, ids: p.IDs, phones: phones, now: now},
		blocks:    blocks,
		emails:    &emails{mail: mq, st: st, cl: p.DB, hash: h, sessions: sess, profiles: profiles, now: now},
		log:       log,
		st:        st,
		keys:      keys,
		now:       now,
	}, nil
}

// MetricPasswordChecks counts the passwords verified at login.
const MetricPasswordChecks = "mall_user_password_checks_total"

// refreshClass is the rate-limit class of refreshes per session (auth.refresh_per_minute).
const refreshClass = "auth_refresh"

// EnsureAdmin is EnsureAdminWith without options: created tells whether the account is new.
func EnsureAdmin(ctx context.Context, app config.Config, db *sqldb.Cluster, ids *idgen.Generator, email, password string) (userID int64, created bool, err error) {
	res, err := EnsureAdminWith(ctx, app, db, ids, email, password, AdminOptions{})
	return res.UserID, res.Outcome == AdminCreated, err
}

// AdminOptions adjust EnsureAdminWith.
type AdminOptions struct {
	// ResetPassword takes over an account the command did not create: its password becomes
	// the given one, its address is marked verified and its sessions end.
	ResetPassword bool
}

// AdminOutcome says what EnsureAdminWith did.
type AdminOutcome string

// Outcomes of EnsureAdminWith.
const (
	AdminCreated   AdminOutcome = "created"
	AdminExisting  AdminOutcome = "existing"   // already an admin, or a verified account without a password
	AdminTakenOver AdminOutcome = "taken_over" // password reset, address verified, sessions ended
)

// AdminResult is the account EnsureAdminWith made an admin.
type AdminResult struct {
	UserID  int64
	Outcome AdminOutcome
}

// EnsureAdminWith is `mall admin create`. With no account for email it creates one with
// password, its address verified (the operator vouches for it), and grants platform_admin.
// An existing account becomes an admin only if it already is one (nothing changes: running
// the command again is harmless) or its address is verified and it has no password (an
// account from a third-party login). Any other account — a password the operator does not
// know, an address nobody proved — may belong to someone who registered the address first:
// it is refused (ErrAdminTakeover) unless o.ResetPassword takes it over. It needs only the
// databases and an ID generator: no signing keys, no Redis.
func EnsureAdminWith(ctx context.Context, app config.Config, db *sqldb.Cluster, ids *idgen.Generator, email, password string, o AdminOptions) (AdminResult, error) {
	cfg, err := ConfigSection.From(app)
	if err != nil {
		return AdminResult{}, err
	}
	h, err := newHasher(DefaultPasswordParams, cfg.Password.MaxConcurrentHashes)
	if err != nil {
		return AdminResult{}, err
	}
	db = db.For("user")
	// Only the parts EnsureAdmin uses: accounts to register, roles to grant.
	st, ob := &store{cl: db}, outbox.NewWriter()
	s := &service{
		accounts: &accounts{log: slog.New(slog.DiscardHandler), st: st, cl: db, ids: ids, outbox: ob, hash: h, now: time.Now},
		roles:    &roles{st: st, cl: db, outbox: ob, now: time.Now},
		st:       st,
		now:      time.Now,
	}
	return s.ensureAdmin(ctx, email, password, o)
}

// MarkEmailVerified marks userID's address verified without a token. It is for the
// operator's own tooling only (`mall seed` vouching for the demo addresses it makes up);
// nothing reachable from the network calls it.
func MarkEmailVerified(ctx context.Context, db *sqldb.Cluster, userID int64) error {
	st := &store{cl: db.For("user")}
	now := time.Now().UTC().Truncate(time.Microsecond)
	return st.setVerified(ctx, userID, now)
}

// How often the janitor deletes expired refresh tokens, and how many per statement.
const (
	janitorInterval = time.Hour
	janitorBatch    = 1000
)

func runLifecycle(lc fx.Lifecycle, s *service) {
	lc.Append(fx.StartHook(func(ctx context.Context) error {
		// Load the roles now so a broken database fails the start, not the first request.
		_, err := s.roles.get(ctx)
		return err
	}))
	var ps *redis.PubSub
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			// Subscribe before the first load, so no change between the two is missed.
			ps = s.blocks.rdb.Subscribe(context.Background(), s.blocks.channel)
			go s.blocks.listen(ps)
			return s.blocks.reload(ctx)
		},
		OnStop: func(context.Context) error { return ps.Close() },
	})
}

// blocksReloader reloads the blocks on every change message and every blocksResync.
func blocksReloader(s *service) worker.Spec {
	return worker.Spec{Name: "user.blocks", Interval: blocksResync, Trigger: s.blocks.trigger, Run: s.blocks.reload}
}

// keyReloader reloads the signing keys every keyReloadInterval and at once on SIGHUP.
func keyReloader(s *service) worker.Spec {
	return worker.Spec{Name: "user.signing_keys", Interval: keyReloadInterval, Signals: []os.Signal{syscall.SIGHUP},
		Run: func(context.Context) error { return s.reloadKeys() }}
}

// refreshJanitor deletes expired refresh tokens every janitorInterval.
func refreshJanitor(s *service) worker.Spec {
	return worker.Spec{Name: "user.refresh_janitor", Interval: janitorInterval, Run: s.deleteExpiredRefreshTokens}
}

func (s *service) reloadKeys() error {
	changed, err := s.keys.reload()
	if err != nil {
		return fmt.Errorf("user: signing keys not reloaded; the previous keys stay in force: %w", err)
	}
	if changed {
		ks := s.keys.current()
		s.log.Info("user: signing keys reloaded", "signing_kid", ks.signKID, "verification_keys", len(ks.verify))
	}
	return nil
}

func (s *service) deleteExpiredRefreshTokens(ctx context.Context) error {
	// Keep expired rows a day so a late reuse still reads as reuse in the logs.
	before := s.clock().Add(-24 * time.Hour)
	for ctx.Err() == nil {
		n, err := s.st.deleteExpiredRefresh(ctx, before, janitorBatch)
		if err != nil {
			return fmt.Errorf("user: deleting expired refresh tokens: %w", err)
		}
		if n < janitorBatch {
			return nil
		}
	}
	return nil
}
