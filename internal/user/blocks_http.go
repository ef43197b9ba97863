package user

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/httpx"
)

type blockRequest struct {
	Kind   string `json:"kind" validate:"required,oneof=ip cidr user"`
	Value  string `json:"value" validate:"required,max=64"`
	Reason string `json:"reason" validate:"required,max=255"`
	// ExpiresAt ends the block (RFC 3339); absent: until lifted.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

type blockResponse struct {
	ID        httpx.ID   `json:"id"`
	Kind      string     `json:"kind"`
	Value     string     `json:"value"`
	Reason    string     `json:"reason"`
	CreatedBy httpx.ID   `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

func toBlockResponse(b Block) blockResponse {
	return blockResponse{ID: httpx.ID(b.ID), Kind: b.Kind, Value: b.Value, Reason: b.Reason,
		CreatedBy: httpx.ID(b.CreatedBy), CreatedAt: b.CreatedAt, ExpiresAt: b.ExpiresAt}
}

type blockHandler struct{ b *blockList }

func newBlockHandler(s *service) httpx.Routes { return blockHandler{b: s.blocks} }

// Routes implements httpx.Routes.
func (h blockHandler) Routes() []httpx.Route {
	admin := []string{"admin"}
	mw := []echo.MiddlewareFunc{RequirePermission(PermAdminUsers)}
	return []httpx.Route{
		{Method: http.MethodPost, Path: "/api/v1/admin/blocks", Handler: h.create,
			Summary: "Block a user, an IP address or a CIDR (403 access.blocked everywhere; a user's sessions and WebSockets end) (platform admin)",
			Tags:    admin, Request: blockRequest{}, Response: blockResponse{}, Status: http.StatusCreated, Auth: true, Middleware: mw},
		{Method: http.MethodGet, Path: "/api/v1/admin/blocks", Handler: h.list,
			Summary: "The blocks in force, newest first (platform admin)",
			Tags:    admin, Response: httpx.List[blockResponse]{}, Auth: true, Middleware: mw},
		{Method: http.MethodDelete, Path: "/api/v1/admin/blocks/:id", Handler: h.lift,
			Summary: "Lift a block (platform admin)", Tags: admin, Status: http.StatusNoContent, Auth: true, Middleware: mw},
	}
}

func (h blockHandler) create(c echo.Context) error {
	var in blockRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	ctx := c.Request().Context()
	b, err := h.b.createBlock(ctx, authn.UserID(ctx), c.RealIP(),
		blockInput{Kind: in.Kind, Value: in.Value, Reason: in.Reason, ExpiresAt: in.ExpiresAt})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toBlockResponse(b))
}

func (h blockHandler) list(c echo.Context) error {
	p, before, err := httpx.IDPageFrom(c)
	if err != nil {
		return err
	}
	bs, err := h.b.listBlocks(c.Request().Context(), before, p.Fetch())
	if err != nil {
		return err
	}
	out := make([]blockResponse, len(bs))
	for i, b := range bs {
		out[i] = toBlockResponse(b)
	}
	return c.JSON(http.StatusOK, httpx.PageOf(out, p, func(last blockResponse) []byte { return httpx.IDCursor(last.ID.Int64()) }))
}

func (h blockHandler) lift(c echo.Context) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	if err := h.b.deleteBlock(c.Request().Context(), id.Int64()); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
