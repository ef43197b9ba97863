package flashsale

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/idempotency"
	"github.com/mallhq/mall/internal/user"
)

type handler struct{ svc Service }

func newHandler(svc Service) httpx.Routes { return &handler{svc: svc} }

type createRequest struct {
	SKUID        httpx.ID  `json:"sku_id" validate:"required"`
	Price        int64     `json:"price" validate:"required,min=1"`
	Quantity     int64     `json:"quantity" validate:"required,min=1,max=100000"`
	PerUserLimit int       `json:"per_user_limit" validate:"required,min=1,max=100"`
	StartsAt     time.Time `json:"starts_at" validate:"required"`
	EndsAt       time.Time `json:"ends_at" validate:"required"`
}

type saleResponse struct {
	ID            httpx.ID  `json:"id"`
	ProductID     httpx.ID  `json:"product_id"`
	SKUID         httpx.ID  `json:"sku_id"`
	MerchantID    httpx.ID  `json:"merchant_id"`
	Title         string    `json:"title"`
	Price         int64     `json:"price"`
	OriginalPrice int64     `json:"original_price"`
	Currency      string    `json:"currency"`
	Quantity      int64     `json:"quantity"`
	Remaining     int64     `json:"remaining"`
	Sold          int64     `json:"sold"`
	PerUserLimit  int       `json:"per_user_limit"`
	StartsAt      time.Time `json:"starts_at"`
	EndsAt        time.Time `json:"ends_at"`
	Status        Status    `json:"status"`
	CreatedAt     time.Time `json:"created_at"`
}

type attemptRequest struct {
	Quantity  int64    `json:"quantity" validate:"required,min=1,max=100"`
	AddressID httpx.ID `json:"address_id" validate:"required"`
}

type ticketResponse struct {
	ID          httpx.ID     `json:"ticket_id"`
	FlashSaleID httpx.ID     `json:"flash_sale_id"`
	Status      TicketStatus `json:"status"`
	Quantity    int64        `json:"quantity"`
	CheckoutID  *httpx.ID    `json:"checkout_id,omitempty"`
	OrderID     *httpx.ID    `json:"order_id,omitempty"`
	Code        string       `json:"code,omitempty"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
}

type listQuery struct {
	Status string `query:"status" validate:"omitempty,oneof=scheduled running"`
}

func toSale(s Sale) saleResponse {
	return saleResponse{ID: httpx.ID(s.ID), ProductID: httpx.ID(s.ProductID), SKUID: httpx.ID(s.SKUID),
		MerchantID: httpx.ID(s.MerchantID), Title: s.Title, Price: s.Price, OriginalPrice: s.OriginalPrice,
		Currency: "CNY", Quantity: s.Quantity, Remaining: s.Remaining, Sold: s.Sold, PerUserLimit: s.PerUserLimit,
		StartsAt: s.StartsAt, EndsAt: s.EndsAt, Status: s.Status, CreatedAt: s.CreatedAt}
}

func toTicket(t Ticket) ticketResponse {
	out := ticketResponse{ID: httpx.ID(t.ID), FlashSaleID: httpx.ID(t.SaleID), Status: t.Status, Quantity: t.Quantity,
		Code: t.Code, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
	if t.OrderID != 0 {
		o, c := httpx.ID(t.OrderID), httpx.ID(t.CheckoutID)
		out.OrderID, out.CheckoutID = &o, &c
	}
	return out
}

func (h *handler) Routes() []httpx.Route {
	mer := []echo.MiddlewareFunc{user.RequirePermission(user.PermMerchantProducts)}
	tags := []string{"flash sales"}
	return []httpx.Route{
		{Method: http.MethodPost, Path: "/api/v1/merchant/flash-sales", Handler: h.create,
			Summary: "Create a flash sale of one of the merchant's on-sale SKUs: its units leave the SKU's stock at once " +
				"(409 stock.insufficient)", Tags: tags, Request: createRequest{}, Response: saleResponse{},
			Status: http.StatusCreated, Auth: true, Middleware: mer},
		{Method: http.MethodGet, Path: "/api/v1/merchant/flash-sales", Handler: h.merchantList,
			Summary: "The merchant's flash sales, newest first, with sold and remaining", Tags: tags,
			Response: httpx.List[saleResponse]{}, Auth: true, Middleware: mer},
		{Method: http.MethodGet, Path: "/api/v1/merchant/flash-sales/:id", Handler: h.merchantGet,
			Summary: "One of the merchant's flash sales", Tags: tags, Response: saleResponse{}, Auth: true, Middleware: mer},
		{Method: http.MethodPost, Path: "/api/v1/merchant/flash-sales/:id/cancel", Handler: h.cancel,
			Summary: "Cancel a flash sale: what is left returns to the SKU", Tags: tags, Response: saleResponse{},
			Auth: true, Middleware: mer},
		{Method: http.MethodGet, Path: "/api/v1/flash-sales", Handler: h.list,
			Summary: "Scheduled and running flash sales, newest first", Tags: tags, Query: listQuery{},
			Response: httpx.List[saleResponse]{}},
		{Method: http.MethodGet, Path: "/api/v1/flash-sales/:id", Handler: h.get,
			Summary: "A flash sale", Tags: tags, Response: saleResponse{}},
		// The gate is the attempt's idempotency: the same Idempotency-Key answers the same
		// ticket in the same Redis call, so the generic idempotency middleware (more Redis
		// round trips) is not used; the header is still required.
		{Method: http.MethodPost, Path: "/api/v1/flash-sales/:id/attempts", Handler: h.attempt,
			Summary: "Try to buy: 202 with a queued ticket, or 409 flash_sale.sold_out / limit_reached / not_running, " +
				"429 when the queue is full, 503 when the attempt could not be queued (Retry-After)",
			Tags: tags, Request: attemptRequest{}, Response: ticketResponse{}, Status: http.StatusAccepted, Auth: true},
		{Method: http.MethodGet, Path: "/api/v1/flash-sales/tickets/:id", Handler: h.ticket,
			Summary: "The buyer's own ticket: queued, ordered (with the order) or failed (with a code)", Tags: tags,
			Response: ticketResponse{}, Auth: true},
	}
}

func (h *handler) create(c echo.Context) error {
	ctx := c.Request().Context()
	mid, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	var in createRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	s, err := h.svc.Create(ctx, mid, NewSale{SKUID: in.SKUID.Int64(), Price: in.Price, Quantity: in.Quantity,
		PerUserLimit: in.PerUserLimit, StartsAt: in.StartsAt, EndsAt: in.EndsAt})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toSale(s))
}

func (h *handler) merchantList(c echo.Context) error {
	ctx := c.Request().Context()
	mid, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	return httpx.ListByID(c, func(before int64, limit int) ([]Sale, error) {
		return h.svc.MerchantSales(ctx, mid, before, limit)
	}, toSale, saleID)
}

func saleID(r saleResponse) int64 { return r.ID.Int64() }

// saleByID answers fn's sale for the path's ID (a malformed ID names no sale).
func saleByID(c echo.Context, fn func(id int64) (Sale, error)) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return ErrNotFound
	}
	s, err := fn(id.Int64())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toSale(s))
}

func (h *handler) merchantGet(c echo.Context) error {
	ctx := c.Request().Context()
	mid, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	return saleByID(c, func(id int64) (Sale, error) { return h.svc.MerchantSale(ctx, mid, id) })
}

func (h *handler) cancel(c echo.Context) error {
	ctx := c.Request().Context()
	mid, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	return saleByID(c, func(id int64) (Sale, error) { return h.svc.Cancel(ctx, mid, id) })
}

func (h *handler) list(c echo.Context) error {
	var q listQuery
	if err := httpx.BindQuery(c, &q); err != nil {
		return err
	}
	return httpx.ListByID(c, func(before int64, limit int) ([]Sale, error) {
		return h.svc.Sales(c.Request().Context(), Status(q.Status), before, limit)
	}, toSale, saleID)
}

func (h *handler) get(c echo.Context) error {
	ctx := c.Request().Context()
	return saleByID(c, func(id int64) (Sale, error) { return h.svc.Sale(ctx, id) })
}

func (h *handler) attempt(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return ErrNotFound
	}
	key := c.Request().Header.Get("Idempotency-Key")
	if err := idempotency.ValidKey(key); err != nil {
		return err
	}
	var in attemptRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	t, err := h.svc.Attempt(ctx, NewAttempt{SaleID: id.Int64(), BuyerID: authn.UserID(ctx),
		AddressID: in.AddressID.Int64(), Quantity: in.Quantity, Key: key})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, toTicket(t))
}

func (h *handler) ticket(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return ErrTicketNotFound
	}
	t, err := h.svc.Ticket(ctx, authn.UserID(ctx), id.Int64())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toTicket(t))
}
