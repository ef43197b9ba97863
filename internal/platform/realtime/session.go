package realtime

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"github.com/mallhq/mall/internal/platform/ratelimit"
)

// Close codes of connections the server ends for their caller's sake (RFC 6455 leaves
// 4000-4999 to applications). A client seeing StatusSessionEnded refreshes or logs in
// again before reconnecting; StatusBlocked means it should not reconnect.
const (
	StatusSessionEnded websocket.StatusCode = 4001
	StatusBlocked      websocket.StatusCode = 4003
)

// A connection lives as long as its caller's session: it is closed when the access token
// it was opened with expires (a timer per authenticated connection), and when the session,
// the user or the client's network is ended on any replica (a control message on the Redis
// channel rt:ctl that every hub subscribes to at Start, applied here at once as well).

// control is one message on the control channel.
type control struct {
	Op        string `json:"op"` // "session", "user" or "net"
	UserID    int64  `json:"user_id,omitempty"`
	SessionID string `json:"session_id,omitempty"`
	Prefix    string `json:"prefix,omitempty"`
	Blocked   bool   `json:"blocked,omitempty"`
}

// EndSession closes the connections opened with an access token of the user's session
// (logout, a revoked session), on every replica.
func (h *Hub) EndSession(ctx context.Context, userID int64, sessionID string) error {
	return h.sendControl(ctx, control{Op: "session", UserID: userID, SessionID: sessionID})
}

// EndUser closes every connection of the user on every replica (every session ended:
// roles revoked, password reset); blocked says why (the close code).
func (h *Hub) EndUser(ctx context.Context, userID int64, blocked bool) error {
	return h.sendControl(ctx, control{Op: "user", UserID: userID, Blocked: blocked})
}

// EndNetwork closes every connection from addresses in prefix on every replica (a block
// of an address or a network).
func (h *Hub) EndNetwork(ctx context.Context, prefix netip.Prefix) error {
	return h.sendControl(ctx, control{Op: "net", Prefix: prefix.Masked().String(), Blocked: true})
}

// sendControl applies c here at once (also when Redis is down) and publishes it for the
// other replicas (this one applies it again on receipt, to no effect).
func (h *Hub) sendControl(ctx context.Context, c control) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("realtime: encode control: %w", err)
	}
	h.control(string(b))
	if err := h.rdb.Publish(ctx, h.ctlChannel, b).Err(); err != nil {
		return fmt.Errorf("realtime: publish control: %w", err)
	}
	return nil
}

// control closes the local connections a control message names.
func (h *Hub) control(payload string) {
	var c control
	if err := json.Unmarshal([]byte(payload), &c); err != nil {
		h.m.badEnvelopes.Inc()
		h.log.Warn("realtime: unreadable control message ignored", "error", err.Error())
		return
	}
	var match func(Identity) bool
	switch c.Op {
	case "session":
		match = func(w Identity) bool { return w.UserID == c.UserID && w.UserID != 0 && w.SessionID == c.SessionID }
	case "user":
		match = func(w Identity) bool { return w.UserID == c.UserID && w.UserID != 0 }
	case "net":
		p, err := netip.ParsePrefix(c.Prefix)
		if err != nil {
			return
		}
		match = func(w Identity) bool {
			a, err := netip.ParseAddr(w.IP)
			return err == nil && p.Contains(a.Unmap().WithZone(""))
		}
	default:
		return
	}
	code, reason := StatusSessionEnded, "session ended"
	if c.Blocked {
		code, reason = StatusBlocked, "access blocked"
	}
	var ended []*conn
	h.mu.Lock()
	for _, r := range h.rooms {
		for cn := range r.conns {
			if match(cn.who) {
				ended = append(ended, cn)
			}
		}
	}
	h.mu.Unlock()
	for _, cn := range ended {
		h.m.sessionEnds.Inc()
		go cn.drop(code, reason)
	}
}

// watchExpiry closes c when its access token expires.
func (h *Hub) watchExpiry(c *conn) {
	if c.who.ExpiresAt.IsZero() {
		return
	}
	d := max(time.Until(c.who.ExpiresAt), 0)
	t := time.AfterFunc(d, func() {
		h.m.sessionEnds.Inc()
		c.drop(StatusSessionEnded, "session expired")
	})
	c.mu.Lock()
	c.expiry = t
	c.mu.Unlock()
}

func (c *conn) stopExpiry() {
	c.mu.Lock()
	t := c.expiry
	c.mu.Unlock()
	if t != nil {
		t.Stop()
	}
}

type callerKey struct {
	key   string
	who   string // for the refusal's detail
	limit int
}

// callerKeys are the caps a connection counts against: its client network (unless trusted)
// and its user.
func (h *Hub) callerKeys(who Identity) []callerKey {
	var out []callerKey
	if who.IP != "" && !h.trusted.Contains(who.IP) {
		out = append(out, callerKey{key: "ip:" + ratelimit.ClientKey(who.IP), who: "this address", limit: h.cfg.MaxConnectionsPerIP})
	}
	if who.UserID != 0 {
		out = append(out, callerKey{key: "user:" + strconv.FormatInt(who.UserID, 10), who: "this user", limit: h.cfg.MaxConnectionsPerUser})
	}
	return out
}
