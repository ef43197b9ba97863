// Package realtime is Mall's WebSocket hub: clients join one room per connection, and a
// message published to a room reaches every connection in it on every replica, in the
// same order everywhere. Replicas fan out through Redis pub/sub (one channel per room,
// subscribed while the replica has a connection in the room) and count viewers in Redis.
//
// Delivery is at most once: a message published while a replica is (re)subscribing —
// a room's first connection joining, or Redis reconnecting — is not seen there. A client
// whose handshake has completed is in the room: it gets everything published afterwards. Consumers
// send full state in their messages (and in Room.Welcome) so a gap heals on the next one.
package realtime

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/errs"
)

// Identity is the verified caller of a connection.
type Identity struct {
	UserID int64 // 0 when the client sent no token: anonymous viewer
	// SessionID is the access token's session (refresh family); ExpiresAt is when the
	// token expires: the hub closes the connection then (StatusSessionEnded), and when the
	// session or the user is ended (Hub.EndSession, Hub.EndUser) on any replica.
	SessionID string
	ExpiresAt time.Time
	// IP is the client address (echo's RealIP), for the per-IP cap and network blocks.
	IP string
}

// Room is what a connection joins, as decided by the open callback of Handler.
type Room struct {
	Name    string // e.g. "live:123", "auction:456"
	Welcome []any  // sent to this connection only, before any room message (current state)
	// OnMessage handles one client text frame (already size-limited). nil: client frames
	// are ignored. A returned error is sent to this client only as
	// {"type":"error","code":...,"detail":...}; it does not close the connection.
	OnMessage func(ctx context.Context, who Identity, data []byte) error
}

// Errors answered before the upgrade.
var (
	ErrOriginRefused = errs.New(errs.Forbidden, "realtime.origin_refused")
	ErrTooManyConns  = errs.New(errs.Unavailable, "realtime.too_many_connections")
	ErrRoomFull      = errs.New(errs.Unavailable, "realtime.room_full")
	// ErrCallerConns: the caller (client IP or user) has as many connections on this
	// replica as realtime.max_connections_per_ip / max_connections_per_user allow.
	ErrCallerConns  = errs.New(errs.TooManyRequests, "realtime.too_many_caller_connections")
	ErrNotWebSocket = errs.New(errs.Invalid, "realtime.websocket_required")
	ErrInvalidToken = errs.New(errs.Unauthenticated, "auth.invalid_token")
	errTextOnly     = errs.New(errs.Invalid, "realtime.text_only").WithDetail("send JSON in text frames")
	errBadRoom      = errors.New("realtime: room name must be 1..200 bytes")
)

// Config is the hub's configuration (realtime.* plus test knobs).
type Config struct {
	AllowedOrigins     []string
	MaxMessageBytes    int64
	MaxConnections     int
	MaxRoomConnections int
	// MaxConnectionsPerIP (client network, IPv6 by /64) and MaxConnectionsPerUser bound one
	// caller on this replica; 0: no bound. TrustedClients (CIDRs) skip the per-IP bound.
	MaxConnectionsPerIP   int
	MaxConnectionsPerUser int
	TrustedClients        []string
	SendQueue             int
	WriteTimeout          time.Duration
	PingInterval          time.Duration
	PongTimeout           time.Duration
	PresenceTTL           time.Duration
	// Prefix starts every Redis key and channel name ("" in production: "rt:..."); tests
	// keep apart with their own.
	Prefix string
	// NodeID names this replica in presence hashes; empty: a random one.
	NodeID string
}

// ConfigFrom maps realtime.* onto Config.
func ConfigFrom(c config.Realtime) Config {
	return Config{
		AllowedOrigins:        c.AllowedOrigins,
		MaxMessageBytes:       c.MaxMessageBytes,
		MaxConnections:        c.MaxConnections,
		MaxRoomConnections:    c.MaxRoomConnections,
		MaxConnectionsPerIP:   c.MaxConnectionsPerIP,
		MaxConnectionsPerUser: c.MaxConnectionsPerUser,
		SendQueue:             c.SendQueue,
		WriteTimeout:          c.WriteTimeout,
		PingInterval:          c.PingInterval,
		PongTimeout:           c.PongTimeout,
		PresenceTTL:           c.PresenceTTL,
	}
}

// DefaultConfig is ConfigFrom of the shipped defaults (configs/mall.yaml).
func DefaultConfig() Config {
	return Config{
		MaxMessageBytes:       4096,
		MaxConnections:        20000,
		MaxRoomConnections:    10000,
		MaxConnectionsPerIP:   200,
		MaxConnectionsPerUser: 10,
		SendQueue:             256,
		WriteTimeout:          10 * time.Second,
		PingInterval:          30 * time.Second,
		PongTimeout:           10 * time.Second,
		PresenceTTL:           30 * time.Second,
	}
}

// UserRoom is the room of one logged-in user's own channel (/ws/me): modules publish the
// user's events there (a flash-sale ticket's result, an order's status, an outbid bid).
func UserRoom(userID int64) string { return "user:" + strconv.FormatInt(userID, 10) }
