package live

import (
	"context"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/realtime"
)

// welcomer builds a new connection's first messages (the service does).
type welcomer interface {
	Welcome(ctx context.Context, r Room) []any
}

// wsRoute is GET /ws/live/:id on the realtime hub: anyone may watch (state, pinned product,
// chat, viewer counts); chatting needs a logged-in user (the hub verifies the token).
func (h *handler) wsRoute() httpx.Route {
	return httpx.Route{Method: "GET", Path: "/ws/live/:id", Handler: h.hub.Handler(h.open),
		Summary: "WebSocket of a live room: server sends state, pinned, chat, viewers; client sends {\"type\":\"chat\",\"text\"} (login required)",
		Tags:    []string{"live"}}
}

// open admits a connection to an existing, not banned room (404 before the upgrade).
func (h *handler) open(c echo.Context, _ realtime.Identity) (realtime.Room, error) {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return realtime.Room{}, err
	}
	ctx := c.Request().Context()
	r, err := h.svc.Room(ctx, id.Int64())
	if err != nil {
		return realtime.Room{}, err
	}
	var welcome []any
	if w, ok := h.svc.(welcomer); ok {
		welcome = w.Welcome(ctx, r)
	}
	roomID := r.ID
	return realtime.Room{
		Name:    HubRoom(roomID),
		Welcome: welcome,
		OnMessage: func(ctx context.Context, who realtime.Identity, data []byte) error {
			text, err := ParseClientMessage(data)
			if err != nil {
				return err
			}
			_, err = h.svc.Chat(ctx, roomID, who.UserID, text)
			return err
		},
	}, nil
}
