package stock

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/user"
)

type handler struct {
	svc Service
}

func newHandler(s Service) httpx.Routes { return &handler{svc: s} }

// DTOs.

type setRequest struct {
	// Available is a pointer so a missing field is "required", not 0.
	Available *int64 `json:"available" validate:"required,min=0,max=1000000000"`
}

type levelResponse struct {
	SKUID     httpx.ID  `json:"sku_id"`
	Available int64     `json:"available"`
	Reserved  int64     `json:"reserved"`
	Sold      int64     `json:"sold"`
	UpdatedAt time.Time `json:"updated_at"`
}

func toLevelResponse(l Level) levelResponse {
	return levelResponse{SKUID: httpx.ID(l.SKUID), Available: l.Available, Reserved: l.Reserved,
		Sold: l.Sold, UpdatedAt: l.UpdatedAt.UTC()}
}

// Routes implements httpx.Routes.
func (h *handler) Routes() []httpx.Route {
	tags := []string{"merchant"}
	perm := []echo.MiddlewareFunc{user.RequirePermission(user.PermMerchantStock)}
	return []httpx.Route{
		{Method: http.MethodPut, Path: "/api/v1/merchant/skus/:sku_id/stock", Handler: h.set,
			Summary: "Set a SKU's available stock (the caller's merchant only)",
			Tags:    tags, Request: setRequest{}, Response: levelResponse{}, Auth: true, Middleware: perm},
		{Method: http.MethodGet, Path: "/api/v1/merchant/skus/:sku_id/stock", Handler: h.get,
			Summary: "A SKU's stock levels (the caller's merchant only)",
			Tags:    tags, Response: levelResponse{}, Auth: true, Middleware: perm},
	}
}

func (h *handler) set(c echo.Context) error {
	ctx := c.Request().Context()
	merchantID, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	skuID, err := httpx.ParamID(c, "sku_id")
	if err != nil {
		return err
	}
	var in setRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	l, err := h.svc.Set(ctx, merchantID, skuID.Int64(), *in.Available)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toLevelResponse(l))
}

func (h *handler) get(c echo.Context) error {
	ctx := c.Request().Context()
	merchantID, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	skuID, err := httpx.ParamID(c, "sku_id")
	if err != nil {
		return err
	}
	l, err := h.svc.Get(ctx, merchantID, skuID.Int64())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toLevelResponse(l))
}
