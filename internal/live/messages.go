package live

import (
	"context"
	"strconv"
	"time"
)

// WebSocket messages, server to client (API.md: /ws/live/{id}).

// StateMessage is the room's status: sent on connect and on every status change.
type StateMessage struct {
	Type   string `json:"type"` // "state"
	RoomID int64  `json:"room_id,string"`
	Status Status `json:"status"`
	Title  string `json:"title"`
	// HLSURL is where the stream plays while the room is live.
	HLSURL string `json:"hls_url"`
}

// PinnedMessage is the pinned product: sent on connect and on every pin change. ProductID
// is nil when nothing is pinned.
type PinnedMessage struct {
	Type      string  `json:"type"` // "pinned"
	RoomID    int64   `json:"room_id,string"`
	ProductID *string `json:"product_id"`
	Title     string  `json:"title,omitempty"`
	PriceMin  int64   `json:"price_min,omitempty"`
	PriceMax  int64   `json:"price_max,omitempty"`
	Currency  string  `json:"currency,omitempty"`
	Image     string  `json:"image,omitempty"`
}

// ViewersMessage is the room's viewer count, pushed every live.viewers_interval.
type ViewersMessage struct {
	Type   string    `json:"type"` // "viewers"
	RoomID int64     `json:"room_id,string"`
	Count  int64     `json:"count"`
	At     time.Time `json:"at"`
}

func (s *service) stateMessage(r Room) StateMessage {
	return StateMessage{Type: "state", RoomID: r.ID, Status: r.Status, Title: r.Title, HLSURL: s.cfg.HLSURLOf(r.ID)}
}

// pinnedMessage describes r's pinned product from the public catalog; a product that left
// sale since it was pinned is shown by ID only.
func (s *service) pinnedMessage(ctx context.Context, r Room) PinnedMessage {
	m := PinnedMessage{Type: "pinned", RoomID: r.ID}
	if r.PinnedProductID == 0 {
		return m
	}
	id := strconv.FormatInt(r.PinnedProductID, 10)
	m.ProductID = &id
	p, err := s.catalog.PublicProduct(ctx, r.PinnedProductID)
	if err != nil {
		return m
	}
	m.Title, m.PriceMin, m.PriceMax, m.Currency = p.Title, p.PriceMin, p.PriceMax, "CNY"
	if len(p.Images) > 0 {
		m.Image = p.Images[0]
	}
	return m
}

// Welcome is what a new WebSocket connection gets first: the state and the pinned product.
func (s *service) Welcome(ctx context.Context, r Room) []any {
	return []any{s.stateMessage(r), s.pinnedMessage(ctx, r)}
}

// broadcastChange tells the room's viewers about a committed change. Best effort: the
// database has decided, and a viewer who misses it gets the state again on reconnect.
func (s *service) broadcastChange(ctx context.Context, event string, row roomRow) {
	if s.hub == nil {
		return
	}
	r := row.room()
	var msg any
	switch event {
	case EventProductPinned, EventProductUnpinned:
		msg = s.pinnedMessage(ctx, r)
	case EventRoomStarted, EventRoomEnded, EventRoomBanned:
		msg = s.stateMessage(r)
	default:
		return
	}
	if err := s.hub.Publish(context.WithoutCancel(ctx), HubRoom(r.ID), msg); err != nil {
		s.log.WarnContext(ctx, "live broadcast failed", "room_id", r.ID, "event", event, "err", err)
	}
}
