// Package live is Mall's live-room module: merchants stream with any RTMP encoder (OBS,
// ffmpeg) to nginx-rtmp, which asks this module whether a stream key may publish
// (/internal/rtmp/on_publish) and tells it when the stream stops; buyers watch over HLS,
// see the pinned product and chat over the WebSocket /ws/live/{id}.
//
// A room is scheduled → live → ended; the platform may ban it at any time (banned refuses
// publishing and cuts a running stream at nginx's next on_update). The stream key is shown
// once (creation, rotation) and stored as its SHA-256 hash; the HLS playback name is
// room-<id>, never the key (on_publish answers a redirect that renames the stream).
//
// Other modules import this package only: the Service interface, the domain types, the
// errors and the events (events.go).
package live

import (
	"context"
	"strconv"
	"time"

	"github.com/mallhq/mall/internal/platform/errs"
)

// Service is what the HTTP handlers (and other modules) may ask of live rooms.
type Service interface {
	// Create schedules a room for the merchant and returns it with its stream key (the
	// only time the key is shown, apart from RotateKey).
	Create(ctx context.Context, merchantID int64, in NewRoom) (Created, error)
	// RotateKey replaces a scheduled room's stream key (the old one stops working at once);
	// a live room must end first (ErrStatusConflict), so a running stream is never orphaned.
	RotateKey(ctx context.Context, merchantID, roomID int64) (Created, error)
	// MerchantRoom returns the merchant's room; another merchant's room is ErrNotFound.
	MerchantRoom(ctx context.Context, merchantID, roomID int64) (Room, error)
	// MerchantRooms lists the merchant's rooms newest first; status "" is all.
	MerchantRooms(ctx context.Context, merchantID int64, status Status, limit int, before int64) ([]Room, error)
	// Pin shows one of the merchant's on_sale products in a scheduled or live room.
	Pin(ctx context.Context, merchantID, roomID, productID int64) (Room, error)
	// Unpin removes the pinned product (no product pinned is not an error).
	Unpin(ctx context.Context, merchantID, roomID int64) (Room, error)
	// End ends a scheduled or live room (idempotent for an ended one). A running stream
	// is cut at nginx's next on_update.
	End(ctx context.Context, merchantID, roomID int64) (Room, error)
	// Ban is the platform's: the room becomes banned whatever its status (idempotent).
	Ban(ctx context.Context, roomID int64) (Room, error)

	// Room returns a room for the public: banned rooms are ErrNotFound.
	Room(ctx context.Context, roomID int64) (Room, error)
	// Rooms lists public rooms newest first; status "" is every status but banned.
	Rooms(ctx context.Context, status Status, limit int, before int64) ([]Room, error)

	// Publish decides nginx-rtmp's on_publish for a stream key: the scheduled room becomes
	// live and the stream is renamed to the room's PlaybackName. Anything else is
	// ErrPublishRefused: unknown key, a banned or ended room, or a room already live (a
	// second encoder with the same key never takes over a running stream).
	Publish(ctx context.Context, p Publisher) (Room, error)
	// Update decides nginx-rtmp's periodic on_update: nil while the publisher still owns
	// the live room, ErrPublishRefused (cut the stream) once the room ended or was banned.
	Update(ctx context.Context, p Publisher) error
	// PublishDone is nginx-rtmp's on_publish_done: the publisher's live room ends. A done
	// notification of anyone else (an unknown key, a refused second publisher) changes
	// nothing.
	PublishDone(ctx context.Context, p Publisher) error
	// Relay decides on_publish of the HLS application: only a live room's own name
	// (room-<id>), which on_publish's relay publishes, is accepted, so nothing else can
	// reach the public playlists even from an address the HLS application trusts.
	Relay(ctx context.Context, app, name string) error

	// Chat validates, sanitizes and rate-limits one chat message of a logged-in user
	// (userID 0: ErrAuthRequired) and broadcasts it to the room.
	Chat(ctx context.Context, roomID, userID int64, text string) (ChatMessage, error)
	// Viewers is the number of WebSocket connections watching the room, on all replicas.
	Viewers(ctx context.Context, roomID int64) (int64, error)
}

// NewRoom is a room to schedule.
type NewRoom struct {
	Title       string
	ScheduledAt time.Time // zero: not announced
}

// Status is a room's lifecycle state.
type Status string

// Room statuses.
const (
	StatusScheduled Status = "scheduled"
	StatusLive      Status = "live"
	StatusEnded     Status = "ended"
	StatusBanned    Status = "banned"
)

// Open reports whether the room still takes pins and chat (scheduled or live).
func (s Status) Open() bool { return s == StatusScheduled || s == StatusLive }

// Room is one live room. It never carries the stream key.
type Room struct {
	ID, MerchantID  int64
	Title           string
	Status          Status
	PinnedProductID int64 // 0: none
	ScheduledAt     time.Time
	StartedAt       time.Time
	EndedAt         time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
	// ViewerCount is filled by Room (public) from the WebSocket presence.
	ViewerCount int64
}

// PlaybackName is the stream's public name at nginx: the HLS playlist is
// <hls_url>/<PlaybackName>.m3u8.
func PlaybackName(roomID int64) string { return "room-" + strconv.FormatInt(roomID, 10) }

// Created is a room with its freshly issued stream key.
type Created struct {
	Room      Room
	StreamKey string
}

// Publisher identifies one RTMP publishing session as nginx-rtmp reports it.
type Publisher struct {
	// App is the RTMP application ("live").
	App string
	// Key is the stream name the encoder published to: the stream key.
	Key string
	// Client is nginx's client ID and the encoder's address, so a done or update
	// notification of another session is told apart from the owner's.
	Client string
}

// ChatMessage is one chat line as broadcast to a room.
type ChatMessage struct {
	Type     string    `json:"type"` // "chat"
	RoomID   int64     `json:"room_id,string"`
	UserID   int64     `json:"user_id,string"`
	Nickname string    `json:"nickname,omitempty"`
	Text     string    `json:"text"`
	At       time.Time `json:"at"`
}

// Limits.
const (
	MaxTitleRunes = 100
	// keyBytes of crypto/rand make a stream key (160 bits).
	keyBytes = 20
	// MaxKeyLen bounds what on_publish accepts as a stream name before hashing.
	MaxKeyLen = 64
)

// Errors. Codes are stable.
var (
	ErrNotFound       = errs.New(errs.NotFound, "live.room_not_found")
	ErrStatusConflict = errs.New(errs.Conflict, "live.status_conflict")
	ErrRoomClosed     = errs.New(errs.Conflict, "live.room_closed")
	ErrNotOnSale      = errs.New(errs.Unprocessable, "live.product_not_on_sale")
	ErrPublishRefused = errs.New(errs.Forbidden, "live.publish_refused")
	ErrRTMPForbidden  = errs.New(errs.Forbidden, "live.rtmp_forbidden")
	ErrAuthRequired   = errs.New(errs.Unauthenticated, "auth.required")
	ErrChatEmpty      = errs.New(errs.Invalid, "live.chat_empty")
	ErrChatTooLong    = errs.New(errs.Invalid, "live.chat_too_long")
	ErrChatRateLimit  = errs.New(errs.TooManyRequests, "live.chat_rate_limited")
	ErrChatInvalid    = errs.New(errs.Invalid, "live.chat_invalid")
)
