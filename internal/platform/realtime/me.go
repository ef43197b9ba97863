package realtime

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/httpx"
)

// meRoutes serves /ws/me, the logged-in user's own channel (API.md, "Flash sales"): the
// connection joins UserRoom(user) on whichever replica it reaches, and every module
// publishes the user's events there (a flash-sale ticket's result, an order's status).
type meRoutes struct{ hub *Hub }

func newMeRoutes(h *Hub) httpx.Routes { return meRoutes{hub: h} }

func (m meRoutes) Routes() []httpx.Route {
	return []httpx.Route{{Method: http.MethodGet, Path: "/ws/me", Handler: m.hub.Handler(openMe), Auth: true,
		Summary: "WebSocket: the logged-in user's own channel — flash_sale.ticket, order.status, ... (login required)",
		Tags:    []string{"realtime"}}}
}

func openMe(_ echo.Context, who Identity) (Room, error) {
	if who.UserID <= 0 {
		return Room{}, ErrInvalidToken.WithDetail("/ws/me needs an access token")
	}
	return Room{Name: UserRoom(who.UserID)}, nil
}
