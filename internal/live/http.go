package live

import (
	"crypto/subtle"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/ratelimit"
	"github.com/mallhq/mall/internal/platform/realtime"
	"github.com/mallhq/mall/internal/user"
)

type handler struct {
	svc Service
	cfg Config
	hub *realtime.Hub // nil: no WebSocket route (REST-only tests)
}

type handlerParams struct {
	fx.In
	Svc Service
	Cfg Config
	Hub *realtime.Hub `optional:"true"`
}

func newHandler(p handlerParams) httpx.Routes { return &handler{svc: p.Svc, cfg: p.Cfg, hub: p.Hub} }

// RTMPClass is the rate-limit class of nginx-rtmp's notifications: one nginx calls for
// every publisher from one address, so the per-IP default would throttle a busy ingest.
const RTMPClass = "live.rtmp"

func rtmpClass() ratelimit.Class {
	return ratelimit.Class{Name: RTMPClass, Limit: ratelimit.PerSecond(200)}
}

// DTOs.

type createRequest struct {
	Title       string     `json:"title" validate:"required,max=100"`
	ScheduledAt *time.Time `json:"scheduled_at"`
}

type pinRequest struct {
	ProductID httpx.ID `json:"product_id" validate:"required"`
}

type listQuery struct {
	Status string `query:"status" validate:"omitempty,oneof=scheduled live ended banned"`
}

type roomResponse struct {
	ID              httpx.ID   `json:"id"`
	Title           string     `json:"title"`
	MerchantID      httpx.ID   `json:"merchant_id"`
	Status          Status     `json:"status"`
	HLSURL          string     `json:"hls_url"`
	PinnedProductID *httpx.ID  `json:"pinned_product_id"`
	ViewerCount     int64      `json:"viewer_count"`
	ScheduledAt     *time.Time `json:"scheduled_at,omitempty"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	EndedAt         *time.Time `json:"ended_at,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
}

// keyResponse is a room with its stream key: answered once, at creation and rotation.
type keyResponse struct {
	roomResponse
	StreamKey string `json:"stream_key"`
	// RTMPURL is the ingest server (OBS "Server"); the encoder publishes to
	// <rtmp_url>/<stream_key>.
	RTMPURL string `json:"rtmp_url"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func (h *handler) toResponse(r Room) roomResponse {
	out := roomResponse{ID: httpx.ID(r.ID), Title: r.Title, MerchantID: httpx.ID(r.MerchantID), Status: r.Status,
		HLSURL: h.cfg.HLSURLOf(r.ID), ViewerCount: r.ViewerCount, ScheduledAt: optTime(r.ScheduledAt),
		StartedAt: optTime(r.StartedAt), EndedAt: optTime(r.EndedAt), CreatedAt: r.CreatedAt.UTC()}
	if r.PinnedProductID != 0 {
		id := httpx.ID(r.PinnedProductID)
		out.PinnedProductID = &id
	}
	return out
}

func (h *handler) toKeyResponse(c Created) keyResponse {
	return keyResponse{roomResponse: h.toResponse(c.Room), StreamKey: c.StreamKey, RTMPURL: h.cfg.rtmpBase()}
}

// Routes implements httpx.Routes.
func (h *handler) Routes() []httpx.Route {
	merchant := []string{"merchant", "live"}
	perm := []echo.MiddlewareFunc{user.RequirePermission(user.PermMerchantLive)}
	mod := []echo.MiddlewareFunc{user.RequirePermission(user.PermLiveModerate)}
	routes := []httpx.Route{
		{Method: http.MethodPost, Path: "/api/v1/merchant/live-rooms", Handler: h.create, Status: http.StatusCreated,
			Summary: "Schedule a live room; the answer shows its stream key, once", Tags: merchant,
			Request: createRequest{}, Response: keyResponse{}, Auth: true, Middleware: perm},
		{Method: http.MethodGet, Path: "/api/v1/merchant/live-rooms", Handler: h.merchantList,
			Summary: "The caller's merchant's live rooms, newest first", Tags: merchant, Query: listQuery{},
			Response: httpx.List[roomResponse]{}, Auth: true, Middleware: perm},
		{Method: http.MethodGet, Path: "/api/v1/merchant/live-rooms/:id", Handler: h.merchantGet,
			Summary: "One of the caller's merchant's live rooms", Tags: merchant, Response: roomResponse{}, Auth: true, Middleware: perm},
		{Method: http.MethodPost, Path: "/api/v1/merchant/live-rooms/:id/pin", Handler: h.pin,
			Summary: "Pin one of the merchant's on_sale products in the room", Tags: merchant,
			Request: pinRequest{}, Response: roomResponse{}, Auth: true, Middleware: perm},
		{Method: http.MethodDelete, Path: "/api/v1/merchant/live-rooms/:id/pin", Handler: h.unpin,
			Summary: "Unpin the room's product", Tags: merchant, Response: roomResponse{}, Auth: true, Middleware: perm},
		{Method: http.MethodPost, Path: "/api/v1/merchant/live-rooms/:id/end", Handler: h.end,
			Summary: "End the room (a running stream is cut within nginx's on_update interval)", Tags: merchant,
			Response: roomResponse{}, Auth: true, Middleware: perm},
		{Method: http.MethodPost, Path: "/api/v1/merchant/live-rooms/:id/stream-key", Handler: h.rotate,
			Summary: "Replace a scheduled room's stream key; the answer shows the new key, once", Tags: merchant,
			Response: keyResponse{}, Auth: true, Middleware: perm},
		{Method: http.MethodPost, Path: "/api/v1/admin/live-rooms/:id/ban", Handler: h.ban,
			Summary: "Ban a live room: publishing is refused and a running stream is cut", Tags: []string{"admin", "live"},
			Response: roomResponse{}, Auth: true, Middleware: mod},
		{Method: http.MethodGet, Path: "/api/v1/live-rooms", Handler: h.list,
			Summary: "Live rooms, newest first (?status=live)", Tags: []string{"live"}, Query: listQuery{},
			Response: httpx.List[roomResponse]{}},
		{Method: http.MethodGet, Path: "/api/v1/live-rooms/:id", Handler: h.get,
			Summary: "A live room with its viewer count", Tags: []string{"live"}, Response: roomResponse{}},
	}
	for _, n := range []struct {
		path, summary string
		fn            echo.HandlerFunc
		status        int
	}{
		{"/internal/rtmp/on_publish", "nginx-rtmp on_publish: 3xx relays the stream to the HLS application as room-<id> (allowed), 403 refuses", h.onPublish, http.StatusFound},
		{"/internal/rtmp/on_update", "nginx-rtmp on_update: 2xx keeps the stream, 403 cuts it (room ended or banned)", h.onUpdate, http.StatusOK},
		{"/internal/rtmp/on_publish_done", "nginx-rtmp on_publish_done: the publisher's room ends", h.onPublishDone, http.StatusOK},
		{"/internal/rtmp/on_relay", "nginx-rtmp on_publish of the HLS application: only a live room's relay (room-<id>) may publish", h.onRelay, http.StatusOK},
	} {
		routes = append(routes, httpx.Route{Method: http.MethodPost, Path: n.path, Handler: n.fn, Summary: n.summary, Status: n.status,
			Tags: []string{"internal"}, RateLimit: RTMPClass, Produces: "text/plain",
			Middleware: []echo.MiddlewareFunc{h.requireSecret}})
	}
	if h.hub != nil {
		routes = append(routes, h.wsRoute())
	}
	return routes
}

func (h *handler) create(c echo.Context) error {
	ctx := c.Request().Context()
	merchantID, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	var in createRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	nr := NewRoom{Title: in.Title}
	if in.ScheduledAt != nil {
		nr.ScheduledAt = *in.ScheduledAt
	}
	out, err := h.svc.Create(ctx, merchantID, nr)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, h.toKeyResponse(out))
}

func (h *handler) rotate(c echo.Context) error {
	ctx := c.Request().Context()
	merchantID, roomID, err := merchantAndRoom(c)
	if err != nil {
		return err
	}
	out, err := h.svc.RotateKey(ctx, merchantID, roomID)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, h.toKeyResponse(out))
}

func merchantAndRoom(c echo.Context) (merchantID, roomID int64, err error) {
	if merchantID, err = user.MerchantFrom(c.Request().Context()); err != nil {
		return 0, 0, err
	}
	id, err := httpx.ParamID(c, "id")
	return merchantID, id.Int64(), err
}

func (h *handler) listPage(c echo.Context, fetch func(status Status, limit int, before int64) ([]Room, error)) error {
	var q listQuery
	if err := httpx.BindQuery(c, &q); err != nil {
		return err
	}
	return httpx.ListByID(c, func(before int64, limit int) ([]Room, error) {
		return fetch(Status(q.Status), limit, before)
	}, h.toResponse, func(r roomResponse) int64 { return r.ID.Int64() })
}

func (h *handler) merchantList(c echo.Context) error {
	ctx := c.Request().Context()
	merchantID, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	return h.listPage(c, func(status Status, limit int, before int64) ([]Room, error) {
		return h.svc.MerchantRooms(ctx, merchantID, status, limit, before)
	})
}

func (h *handler) list(c echo.Context) error {
	ctx := c.Request().Context()
	return h.listPage(c, func(status Status, limit int, before int64) ([]Room, error) {
		return h.svc.Rooms(ctx, status, limit, before)
	})
}

func (h *handler) merchantGet(c echo.Context) error {
	merchantID, roomID, err := merchantAndRoom(c)
	if err != nil {
		return err
	}
	r, err := h.svc.MerchantRoom(c.Request().Context(), merchantID, roomID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, h.toResponse(r))
}

func (h *handler) get(c echo.Context) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	r, err := h.svc.Room(c.Request().Context(), id.Int64())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, h.toResponse(r))
}

func (h *handler) pin(c echo.Context) error {
	merchantID, roomID, err := merchantAndRoom(c)
	if err != nil {
		return err
	}
	var in pinRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	r, err := h.svc.Pin(c.Request().Context(), merchantID, roomID, in.ProductID.Int64())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, h.toResponse(r))
}

func (h *handler) unpin(c echo.Context) error {
	merchantID, roomID, err := merchantAndRoom(c)
	if err != nil {
		return err
	}
	r, err := h.svc.Unpin(c.Request().Context(), merchantID, roomID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, h.toResponse(r))
}

func (h *handler) end(c echo.Context) error {
	merchantID, roomID, err := merchantAndRoom(c)
	if err != nil {
		return err
	}
	r, err := h.svc.End(c.Request().Context(), merchantID, roomID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, h.toResponse(r))
}

func (h *handler) ban(c echo.Context) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	r, err := h.svc.Ban(c.Request().Context(), id.Int64())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, h.toResponse(r))
}

// nginx-rtmp notifications. nginx posts a form (call, app, name, clientid, addr, ...) to
// the configured URL, which carries ?secret=; only the status matters to it.

// requireSecret refuses a notification without the shared secret in the query (403: a
// 4xx other than 403 would read to nginx as "refuse" too, but 403 is what API.md promises).
func (h *handler) requireSecret(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		got := c.QueryParam("secret")
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(h.cfg.RTMPSecret)) != 1 {
			return ErrRTMPForbidden.WithDetail("missing or wrong secret")
		}
		return next(c)
	}
}

// publisherOf reads the notification's form. Field values are untrusted text: they are
// only compared (hashes, stored session ID), never interpreted.
func publisherOf(c echo.Context) (Publisher, error) {
	req := c.Request()
	if err := req.ParseForm(); err != nil {
		return Publisher{}, ErrPublishRefused.WithDetail("the notification is not a form")
	}
	f := req.PostForm
	client := f.Get("clientid") + "@" + f.Get("addr")
	return Publisher{App: f.Get("app"), Key: f.Get("name"), Client: client}, nil
}

func (h *handler) onPublish(c echo.Context) error {
	p, err := publisherOf(c)
	if err != nil {
		return err
	}
	r, err := h.svc.Publish(c.Request().Context(), p)
	if err != nil {
		return err
	}
	// A 3xx whose Location is an rtmp:// URL makes nginx-rtmp relay the stream there: to
	// the ingest's own HLS application under the room's public name, so the playlist is
	// room-<id>.m3u8 and never named after the key. (A plain-name Location would rename
	// the stream only for modules after the notify module; Debian's HLS runs before it and
	// would write <key>.m3u8.)
	c.Response().Header().Set(echo.HeaderLocation, h.cfg.hlsPushBase()+"/"+PlaybackName(r.ID))
	return c.String(http.StatusFound, "live\n")
}

func (h *handler) onUpdate(c echo.Context) error {
	p, err := publisherOf(c)
	if err != nil {
		return err
	}
	if err := h.svc.Update(c.Request().Context(), p); err != nil {
		return err
	}
	return c.String(http.StatusOK, "ok\n")
}

func (h *handler) onRelay(c echo.Context) error {
	p, err := publisherOf(c)
	if err != nil {
		return err
	}
	if err := h.svc.Relay(c.Request().Context(), p.App, p.Key); err != nil {
		return err
	}
	return c.String(http.StatusOK, "ok\n")
}

func (h *handler) onPublishDone(c echo.Context) error {
	p, err := publisherOf(c)
	if err != nil {
		return err
	}
	if err := h.svc.PublishDone(c.Request().Context(), p); err != nil {
		return err
	}
	return c.String(http.StatusOK, "ok\n")
}
