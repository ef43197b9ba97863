package auction

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/realtime"
	"github.com/mallhq/mall/internal/user"
)

type handler struct{ svc *service }

func newHandler(s *service) httpx.Routes { return &handler{svc: s} }

// DTOs.

type bandRequest struct {
	From      int64 `json:"from" validate:"required,min=1,max=10000000000"`
	Increment int64 `json:"increment" validate:"required,min=1,max=10000000000"`
}

type createRequest struct {
	Title      string    `json:"title" validate:"required,max=200"`
	ProductID  *httpx.ID `json:"product_id,omitempty"`
	StartPrice int64     `json:"start_price" validate:"required,min=1,max=10000000000"`
	Increment  int64     `json:"increment" validate:"required,min=1,max=10000000000"`
	// IncrementLadder (an addition to API.md): from a band's price on, bids rise by its
	// increment instead of increment.
	IncrementLadder     []bandRequest `json:"increment_ladder,omitempty" validate:"max=20,dive"`
	ReservePrice        int64         `json:"reserve_price,omitempty" validate:"min=0,max=10000000000"`
	StartsAt            time.Time     `json:"starts_at" validate:"required"`
	EndsAt              time.Time     `json:"ends_at" validate:"required"`
	ExtendWindowSeconds int64         `json:"extend_window_seconds,omitempty" validate:"min=0,max=3600"`
	ExtendSeconds       int64         `json:"extend_seconds,omitempty" validate:"min=0,max=3600"`
}

type createResponse struct {
	ID     httpx.ID `json:"id"`
	Status string   `json:"status"`
}

type lotResponse struct {
	ID              httpx.ID   `json:"id"`
	MerchantID      httpx.ID   `json:"merchant_id"`
	ProductID       *httpx.ID  `json:"product_id,omitempty"`
	Title           string     `json:"title"`
	Status          string     `json:"status"`
	StartPrice      int64      `json:"start_price"`
	Increment       int64      `json:"increment"`
	IncrementLadder []Band     `json:"increment_ladder,omitempty"`
	CurrentPrice    int64      `json:"current_price"`
	MinNextBid      int64      `json:"min_next_bid"`
	Currency        string     `json:"currency"`
	BidCount        int64      `json:"bid_count"`
	LeaderID        *httpx.ID  `json:"leader_id,omitempty"`
	StartsAt        time.Time  `json:"starts_at"`
	EndsAt          time.Time  `json:"ends_at"`
	ExtendWindow    int64      `json:"extend_window_seconds"`
	Extend          int64      `json:"extend_seconds"`
	ReserveMet      bool       `json:"reserve_met"`
	HasReserve      bool       `json:"has_reserve"`
	Version         int64      `json:"version"`
	WinnerOrderID   *httpx.ID  `json:"winner_order_id,omitempty"`
	OrderState      OrderState `json:"order_state,omitempty"`
	OrderError      string     `json:"order_error,omitempty"`
	EndedAt         *time.Time `json:"ended_at,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
}

type bidRequest struct {
	Amount int64 `json:"amount" validate:"required,min=1,max=10000000000"`
	// MaxAmount (an addition to API.md) makes a proxy bid: the system bids for the caller
	// by the increment up to it.
	MaxAmount int64 `json:"max_amount,omitempty" validate:"omitempty,min=1,max=10000000000,gtefield=Amount"`
}

type bidResponse struct {
	BidID        httpx.ID  `json:"bid_id"`
	Amount       int64     `json:"amount"`
	Kind         BidKind   `json:"kind"`
	CurrentPrice int64     `json:"current_price"`
	Leading      bool      `json:"leading"`
	BidCount     int64     `json:"bid_count"`
	Currency     string    `json:"currency"`
	EndsAt       time.Time `json:"ends_at"`
}

type bidItem struct {
	ID        httpx.ID  `json:"id"`
	Seq       int64     `json:"seq"`
	BidderID  httpx.ID  `json:"bidder_id"`
	Amount    int64     `json:"amount"`
	Kind      BidKind   `json:"kind"`
	CreatedAt time.Time `json:"created_at"`
}

type listQuery struct {
	Status string `query:"status" validate:"omitempty,oneof=scheduled running ended"`
}

const currency = "CNY"

// Routes implements httpx.Routes.
func (h *handler) Routes() []httpx.Route {
	tags := []string{"auctions"}
	routes := []httpx.Route{
		{Method: http.MethodPost, Path: "/api/v1/merchant/auctions", Handler: h.create,
			Summary: "Schedule an auction on one of the merchant's products", Tags: []string{"merchant"},
			Request: createRequest{}, Response: createResponse{}, Status: http.StatusCreated, Auth: true,
			Middleware: []echo.MiddlewareFunc{user.RequirePermission(user.PermMerchantAuctions)}},
		{Method: http.MethodGet, Path: "/api/v1/auctions", Handler: h.list, Summary: "Auctions, newest first",
			Tags: tags, Query: listQuery{}, Response: httpx.List[lotResponse]{}},
		{Method: http.MethodGet, Path: "/api/v1/auctions/:id", Handler: h.get, Summary: "One auction",
			Tags: tags, Response: lotResponse{}},
		{Method: http.MethodPost, Path: "/api/v1/auctions/:id/bids", Handler: h.bid,
			Summary: "Bid (optionally with a proxy maximum); acknowledged once durable", Tags: tags,
			Request: bidRequest{}, Response: bidResponse{}, Status: http.StatusCreated, Auth: true, Idempotent: true},
		{Method: http.MethodGet, Path: "/api/v1/auctions/:id/bids", Handler: h.bids, Summary: "An auction's bids, newest first",
			Tags: tags, Response: httpx.List[bidItem]{}},
	}
	if h.svc.hub != nil {
		routes = append(routes, httpx.Route{Method: http.MethodGet, Path: "/ws/auctions/:id", Handler: h.svc.hub.Handler(h.watch),
			Summary: "WebSocket: the lot's state, then bid, extended and ended messages (each with the lot's version)",
			Tags:    tags})
	}
	return routes
}

// watch opens a lot's room: the welcome is its current state; messages carry the lot's
// version, so a client can drop one not newer than the welcome.
func (h *handler) watch(c echo.Context, _ realtime.Identity) (realtime.Room, error) {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return realtime.Room{}, err
	}
	l, err := h.svc.Get(c.Request().Context(), id.Int64())
	if err != nil {
		return realtime.Room{}, err
	}
	return realtime.Room{Name: Room(l.ID), Welcome: []any{stateOf(l)}}, nil
}

func toLotResponse(l Lot) lotResponse {
	out := lotResponse{ID: httpx.ID(l.ID), MerchantID: httpx.ID(l.MerchantID), Title: l.Title, Status: string(l.Status),
		StartPrice: l.StartPrice, Increment: l.Increment, IncrementLadder: l.Ladder, CurrentPrice: l.CurrentPrice,
		MinNextBid: l.MinNext(), Currency: currency, BidCount: l.BidCount, StartsAt: l.StartsAt, EndsAt: l.EndsAt,
		ExtendWindow: int64(l.ExtendWindow / time.Second), Extend: int64(l.Extend / time.Second),
		ReserveMet: l.ReserveMet(), HasReserve: l.ReservePrice > 0, Version: l.Version, CreatedAt: l.CreatedAt}
	if l.ProductID != 0 {
		id := httpx.ID(l.ProductID)
		out.ProductID = &id
	}
	if l.LeaderID != 0 {
		id := httpx.ID(l.LeaderID)
		out.LeaderID = &id
	}
	if l.Status == StatusEnded {
		t := l.EndedAt
		out.EndedAt = &t
		out.OrderState, out.OrderError = l.OrderState, l.OrderError
		if l.OrderState == OrderPlaced {
			id := httpx.ID(l.WinnerOrderID)
			out.WinnerOrderID = &id
		}
	}
	if l.Status == StatusEnded {
		out.MinNextBid = 0
	}
	return out
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
	nl := NewLot{Title: in.Title, StartPrice: in.StartPrice, Increment: in.Increment, ReservePrice: in.ReservePrice,
		StartsAt: in.StartsAt, EndsAt: in.EndsAt, ExtendWindow: time.Duration(in.ExtendWindowSeconds) * time.Second,
		Extend: time.Duration(in.ExtendSeconds) * time.Second}
	if in.ProductID != nil {
		if in.ProductID.Int64() <= 0 {
			return errs.ErrValidation.WithFields(errs.FieldError{Field: "product_id", Message: "must be positive"})
		}
		nl.ProductID = in.ProductID.Int64()
	}
	for _, b := range in.IncrementLadder {
		nl.Ladder = append(nl.Ladder, Band(b))
	}
	l, err := h.svc.Create(ctx, merchantID, nl)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, createResponse{ID: httpx.ID(l.ID), Status: string(l.Status)})
}

func (h *handler) list(c echo.Context) error {
	var q listQuery
	if err := httpx.BindQuery(c, &q); err != nil {
		return err
	}
	return httpx.ListByID(c, func(before int64, limit int) ([]Lot, error) {
		return h.svc.List(c.Request().Context(), Status(q.Status), limit, before)
	}, toLotResponse, func(r lotResponse) int64 { return r.ID.Int64() })
}

func (h *handler) get(c echo.Context) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	l, err := h.svc.Get(c.Request().Context(), id.Int64())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toLotResponse(l))
}

func (h *handler) bid(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	var in bidRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	p, _ := authn.From(ctx)
	res, err := h.svc.Bid(ctx, PlaceBid{LotID: id.Int64(), BidderID: p.UserID, BidderMerchantID: p.MerchantID,
		Amount: in.Amount, MaxAmount: in.MaxAmount})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, bidResponse{BidID: httpx.ID(res.Bid.ID), Amount: res.Bid.Amount, Kind: res.Bid.Kind,
		CurrentPrice: res.Lot.CurrentPrice, Leading: res.Lot.LeaderID == p.UserID, BidCount: res.Lot.BidCount,
		Currency: currency, EndsAt: res.Lot.EndsAt})
}

func (h *handler) bids(c echo.Context) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	p, before, err := httpx.IDPageFrom(c)
	if err != nil {
		return err
	}
	bs, err := h.svc.Bids(c.Request().Context(), id.Int64(), p.Fetch(), before)
	if err != nil {
		return err
	}
	out := make([]bidItem, len(bs))
	for i, b := range bs {
		out[i] = bidItem{ID: httpx.ID(b.ID), Seq: b.Seq, BidderID: httpx.ID(b.BidderID), Amount: b.Amount, Kind: b.Kind,
			CreatedAt: b.CreatedAt}
	}
	return c.JSON(http.StatusOK, httpx.PageOf(out, p, func(b bidItem) []byte { return httpx.IDCursor(b.Seq) }))
}
