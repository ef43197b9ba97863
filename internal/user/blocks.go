package user

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/idgen"
)

// Blocks (the blacklist): an operator blocks a user, an IP address or a CIDR; the blocked
// get 403 access.blocked on every request, a blocked user's sessions end (refresh refused,
// access tokens refused) and their WebSockets close.
//
// MySQL (user_blocks) is the source of truth. Every replica checks a snapshot in memory (no
// I/O on the hot path) and reloads it from MySQL when a replica publishes a change on the
// Redis channel mall:user:blocks, and every blocksResync as a safety net (pub/sub is at most
// once). Expiry is checked against the snapshot's expires_at at each request, so an expired
// block stops at once without a reload.

// Block kinds.
const (
	BlockIP   = "ip"
	BlockCIDR = "cidr"
	BlockUser = "user"
)

// Errors of blocks.
var (
	ErrBlocked       = errs.New(errs.Forbidden, "access.blocked")
	ErrBlockNotFound = errs.New(errs.NotFound, "access.block_not_found")
	// ErrBlockSelf: an operator may not block their own account or address (they would lock
	// themselves out of lifting it).
	ErrBlockSelf = errs.New(errs.Invalid, "access.block_self")
)

// Block is one entry of the blacklist.
type Block struct {
	ID        int64
	Kind      string
	Value     string // canonical: decimal user ID, address, masked prefix
	Reason    string
	CreatedBy int64
	CreatedAt time.Time
	ExpiresAt *time.Time // nil: until lifted
}

const (
	blocksChannel = redisPrefix + "blocks"
	blocksResync  = 30 * time.Second
	// maxBlockValue bounds a value's text (a prefix like "ffff:...:ffff/128" is 43 bytes).
	maxBlockValue = 64
)

// blockList is the replica's view of user_blocks.
type blockList struct {
	st      *store
	ids     *idgen.Generator
	rdb     redis.UniversalClient
	log     *slog.Logger
	now     func() time.Time
	ender   connEnder
	ses     *sessions
	channel string

	cur     atomic.Pointer[blockSnapshot]
	trigger chan struct{} // wakes the reload worker
}

// blockSnapshot is the live blocks at one load.
type blockSnapshot struct {
	users map[int64]*time.Time
	addrs map[netip.Addr]*time.Time
	nets  []netBlock
}

type netBlock struct {
	p   netip.Prefix
	exp *time.Time
}

func live(exp *time.Time, now time.Time) bool { return exp == nil || now.Before(*exp) }

func (b *blockList) snap() *blockSnapshot {
	if b == nil {
		return &blockSnapshot{}
	}
	if s := b.cur.Load(); s != nil {
		return s
	}
	return &blockSnapshot{}
}

// checkUser is ErrBlocked when the user is blocked now.
func (b *blockList) checkUser(id int64) error {
	if exp, ok := b.snap().users[id]; ok && live(exp, time.Now()) {
		return ErrBlocked.WithDetail("this account is blocked")
	}
	return nil
}

// checkIP is ErrBlocked when the address is blocked now, by itself or by a network.
func (b *blockList) checkIP(ip string) error {
	s := b.snap()
	if len(s.addrs) == 0 && len(s.nets) == 0 {
		return nil
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil
	}
	a = a.Unmap().WithZone("")
	now := time.Now()
	if exp, ok := s.addrs[a]; ok && live(exp, now) {
		return ErrBlocked.WithDetail("this address is blocked")
	}
	for _, n := range s.nets {
		if n.p.Contains(a) && live(n.exp, now) {
			return ErrBlocked.WithDetail("this address is blocked")
		}
	}
	return nil
}

// reload replaces the snapshot with the live rows of user_blocks.
func (b *blockList) reload(ctx context.Context) error {
	rows, err := b.st.liveBlocks(ctx, b.now().UTC())
	if err != nil {
		return fmt.Errorf("user: loading blocks: %w", err)
	}
	s := &blockSnapshot{users: map[int64]*time.Time{}, addrs: map[netip.Addr]*time.Time{}}
	for _, r := range rows {
		bl := r.block()
		switch bl.Kind {
		case BlockUser:
			if id, err := strconv.ParseInt(bl.Value, 10, 64); err == nil {
				prev, had := s.users[id]
				s.users[id] = laterOf(prev, bl.ExpiresAt, had)
			}
		case BlockIP:
			if a, err := netip.ParseAddr(bl.Value); err == nil {
				prev, had := s.addrs[a]
				s.addrs[a] = laterOf(prev, bl.ExpiresAt, had)
			}
		case BlockCIDR:
			if p, err := netip.ParsePrefix(bl.Value); err == nil {
				s.nets = append(s.nets, netBlock{p: p.Masked(), exp: bl.ExpiresAt})
			}
		}
	}
	b.cur.Store(s)
	return nil
}

// laterOf merges two blocks of one subject: the later expiry wins, nil (never) over all;
// prev counts only when had.
func laterOf(prev, next *time.Time, had bool) *time.Time {
	switch {
	case !had:
		return next
	case prev == nil || next == nil:
		return nil
	case next.After(*prev):
		return next
	default:
		return prev
	}
}

// changed reloads here and tells the other replicas to reload.
func (b *blockList) changed(ctx context.Context) {
	if err := b.reload(ctx); err != nil {
		b.log.WarnContext(ctx, "user: blocks not reloaded here; the resync will", "error", err.Error())
	}
	if err := b.rdb.Publish(ctx, b.channel, "reload").Err(); err != nil {
		b.log.WarnContext(ctx, "user: block change not announced; other replicas see it within the resync interval",
			"error", err.Error(), "resync", blocksResync.String())
	}
}

// listen reloads on every message on the blocks channel until ps closes.
func (b *blockList) listen(ps *redis.PubSub) {
	for range ps.Channel() {
		select {
		case b.trigger <- struct{}{}:
		default: // a reload is pending already
		}
	}
}

// blockInput is a validated POST /admin/blocks body.
type blockInput struct {
	Kind, Value, Reason string
	ExpiresAt           *time.Time
}

// canonicalBlock validates and normalizes kind and value.
func canonicalBlock(kind, value string) (string, error) {
	value = strings.TrimSpace(value)
	switch kind {
	case BlockUser:
		id, err := strconv.ParseInt(value, 10, 64)
		if err != nil || id <= 0 {
			return "", fieldErr("value", "must be a user ID")
		}
		return strconv.FormatInt(id, 10), nil
	case BlockIP:
		a, err := netip.ParseAddr(value)
		if err != nil || a.Zone() != "" {
			return "", fieldErr("value", "must be an IPv4 or IPv6 address")
		}
		return a.Unmap().String(), nil
	case BlockCIDR:
		p, err := netip.ParsePrefix(value)
		if err != nil {
			return "", fieldErr("value", "must be a CIDR such as 203.0.113.0/24 or 2001:db8::/48")
		}
		p = p.Masked()
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		if p.Bits() < minPrefixBits(p.Addr()) {
			return "", fieldErr("value", "is too wide a network to block (at least /8 for IPv4, /16 for IPv6)")
		}
		return p.String(), nil
	default:
		return "", fieldErr("kind", "must be ip, cidr or user")
	}
}

// minPrefixBits refuses blocks of a large part of the internet by a typo ("/0").
func minPrefixBits(a netip.Addr) int {
	if a.Is4() {
		return 8
	}
	return 16
}

// createBlock records a block by admin (whose own address is ip) and applies it: the
// snapshot everywhere, and for a user their sessions and WebSockets.
func (b *blockList) createBlock(ctx context.Context, admin int64, ip string, in blockInput) (Block, error) {
	value, err := canonicalBlock(in.Kind, in.Value)
	if err != nil {
		return Block{}, err
	}
	reason, ok := cleanText(in.Reason, 255)
	if !ok || reason == "" {
		return Block{}, fieldErr("reason", "must have 1 to 255 characters and no control characters")
	}
	now := b.now().UTC().Truncate(time.Microsecond)
	if in.ExpiresAt != nil {
		e := in.ExpiresAt.UTC().Truncate(time.Microsecond)
		if !e.After(now) {
			return Block{}, fieldErr("expires_at", "must be in the future")
		}
		in.ExpiresAt = &e
	}
	var userID int64
	var prefix netip.Prefix
	switch in.Kind {
	case BlockUser:
		userID, _ = strconv.ParseInt(value, 10, 64)
		if userID == admin {
			return Block{}, ErrBlockSelf.WithDetail("you cannot block your own account")
		}
		if _, err := b.st.userByID(ctx, userID); err != nil {
			return Block{}, err
		}
	case BlockIP:
		a, _ := netip.ParseAddr(value)
		prefix = netip.PrefixFrom(a, a.BitLen())
	case BlockCIDR:
		prefix, _ = netip.ParsePrefix(value)
	}
	if prefix.IsValid() {
		if a, err := netip.ParseAddr(ip); err == nil && prefix.Contains(a.Unmap().WithZone("")) {
			return Block{}, ErrBlockSelf.WithDetail("the block would cover your own address %s", ip)
		}
	}
	bl := Block{ID: b.ids.Next(0), Kind: in.Kind, Value: value, Reason: reason, CreatedBy: admin, CreatedAt: now,
		ExpiresAt: in.ExpiresAt}
	if err := b.st.insertBlock(ctx, bl); err != nil {
		return Block{}, err
	}
	b.changed(ctx)
	switch {
	case userID != 0:
		// Connections first, so they close as blocked (StatusBlocked) rather than as ended.
		if b.ender != nil {
			if err := b.ender.EndUser(ctx, userID, true); err != nil {
				b.log.WarnContext(ctx, "user: blocked user's connections not closed everywhere", "error", err.Error())
			}
		}
		if err := b.ses.endSessions(ctx, userID); err != nil {
			// The block holds (every token and refresh is refused through it); ending the
			// sessions is belt and braces.
			b.log.WarnContext(ctx, "user: blocked user's sessions not ended", "user_id", userID, "error", err.Error())
		}
	case b.ender != nil:
		if err := b.ender.EndNetwork(ctx, prefix); err != nil {
			b.log.WarnContext(ctx, "user: blocked network's connections not closed everywhere", "error", err.Error())
		}
	}
	return bl, nil
}

func (b *blockList) listBlocks(ctx context.Context, before int64, limit int) ([]Block, error) {
	rows, err := b.st.blocks(ctx, b.now().UTC(), before, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Block, len(rows))
	for i, r := range rows {
		out[i] = r.block()
	}
	return out, nil
}

func (b *blockList) deleteBlock(ctx context.Context, id int64) error {
	ok, err := b.st.deleteBlock(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		return ErrBlockNotFound
	}
	b.changed(ctx)
	return nil
}

// blockMiddleware refuses blocked addresses before anything else runs (authentication
// included), and blocked users once authenticated (see authenticate).
func (b *blockList) middleware() httpx.Middleware {
	return httpx.Middleware{Name: "user.blocks", Order: BlockMiddlewareOrder, Func: func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if err := b.checkIP(c.RealIP()); err != nil {
				return err
			}
			return next(c)
		}
	}}
}

// BlockMiddlewareOrder runs the address check before the WebSocket token lift (-200) and
// authentication (-100): a blocked address costs no token verification.
const BlockMiddlewareOrder = -300

// connEnder closes WebSocket connections on every replica (*realtime.Hub).
type connEnder interface {
	EndSession(ctx context.Context, userID int64, sessionID string) error
	EndUser(ctx context.Context, userID int64, blocked bool) error
	EndNetwork(ctx context.Context, prefix netip.Prefix) error
}
