package order

import (
	"encoding/binary"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/idempotency"
	"github.com/mallhq/mall/internal/user"
)

type handler struct{ svc *service }

func newHandler(s *service) httpx.Routes { return &handler{svc: s} }

// DTOs.

type placeItem struct {
	SKUID    httpx.ID `json:"sku_id" validate:"required"`
	Quantity int64    `json:"quantity" validate:"required,min=1,max=10000"`
}

type placeRequest struct {
	Items     []placeItem `json:"items" validate:"required,min=1,max=100,dive"`
	AddressID httpx.ID    `json:"address_id" validate:"required"`
}

type itemResponse struct {
	SKUID     httpx.ID          `json:"sku_id"`
	ProductID httpx.ID          `json:"product_id"`
	Title     string            `json:"title"`
	Attrs     map[string]string `json:"attrs"`
	Quantity  int64             `json:"quantity"`
	Price     int64             `json:"price"`
	// RefundedQuantity: units of the line refunded so far.
	RefundedQuantity int64 `json:"refunded_quantity,omitempty"`
}

type addressResponse struct {
	Name     string `json:"name"`
	Phone    string `json:"phone"`
	Province string `json:"province"`
	City     string `json:"city"`
	District string `json:"district"`
	Detail   string `json:"detail"`
}

type orderResponse struct {
	ID           httpx.ID        `json:"id"`
	CheckoutID   httpx.ID        `json:"checkout_id"`
	MerchantID   httpx.ID        `json:"merchant_id"`
	Status       string          `json:"status"`
	TotalAmount  int64           `json:"total_amount"`
	Currency     string          `json:"currency"`
	Items        []itemResponse  `json:"items"`
	Address      addressResponse `json:"address"`
	Carrier      string          `json:"carrier,omitempty"`
	TrackingNo   string          `json:"tracking_no,omitempty"`
	RefundReason string          `json:"refund_reason,omitempty"`
	// RefundItems are the open refund request's units (left out: the whole order).
	RefundItems    []refundItemJSON `json:"refund_items,omitempty"`
	RefundedAmount int64            `json:"refunded_amount"`
	// Refunds are the refunds carried out (the operator's view).
	Refunds   []refundResponse `json:"refunds,omitempty"`
	StockLost bool             `json:"stock_lost,omitempty"`
	// FlashSaleID is the flash sale the order came from (left out: an ordinary order).
	FlashSaleID *httpx.ID  `json:"flash_sale_id,omitempty"`
	ExpiresAt   time.Time  `json:"expires_at"`
	PaidAt      *time.Time `json:"paid_at,omitempty"`
	ShippedAt   *time.Time `json:"shipped_at,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
}

type checkoutResponse struct {
	CheckoutID  httpx.ID        `json:"checkout_id"`
	TotalAmount int64           `json:"total_amount"`
	Currency    string          `json:"currency"`
	ExpiresAt   time.Time       `json:"expires_at"`
	Orders      []orderResponse `json:"orders"`
}

type listQuery struct {
	Status string `query:"status" validate:"omitempty,oneof=pending_payment paid shipped completed cancelled refund_requested refund_disputed refunded"`
}

type refundRequest struct {
	Reason string `json:"reason" validate:"required,max=500"`
	// Items: the units to refund; left out, every unit not refunded yet.
	Items []refundItemJSON `json:"items" validate:"omitempty,max=100,dive"`
}

type refundItemJSON struct {
	SKUID    httpx.ID `json:"sku_id" validate:"required"`
	Quantity int64    `json:"quantity" validate:"min=1,max=10000"`
}

type refundResponse struct {
	ID              httpx.ID         `json:"id"`
	Amount          int64            `json:"amount"`
	Items           []refundItemJSON `json:"items"`
	Reason          string           `json:"reason"`
	AfterCompletion bool             `json:"after_completion"`
	CreatedAt       time.Time        `json:"created_at"`
}

func refundItemsOut(items []RefundItem) []refundItemJSON {
	if items == nil {
		return nil
	}
	out := make([]refundItemJSON, len(items))
	for i, it := range items {
		out[i] = refundItemJSON{SKUID: httpx.ID(it.SKUID), Quantity: it.Quantity}
	}
	return out
}

type shipRequest struct {
	Carrier    string `json:"carrier" validate:"required,max=64"`
	TrackingNo string `json:"tracking_no" validate:"required,max=64"`
}

type cartQuantity struct {
	Quantity int64 `json:"quantity" validate:"required,min=1,max=10000"`
}

type cartItemResponse struct {
	SKUID      httpx.ID          `json:"sku_id"`
	ProductID  *httpx.ID         `json:"product_id,omitempty"`
	MerchantID *httpx.ID         `json:"merchant_id,omitempty"`
	Title      string            `json:"title,omitempty"`
	Attrs      map[string]string `json:"attrs,omitempty"`
	Quantity   int64             `json:"quantity"`
	Price      int64             `json:"price"`
	Currency   string            `json:"currency"`
	OnSale     bool              `json:"on_sale"`
}

type cartResponse struct {
	Items       []cartItemResponse `json:"items"`
	TotalAmount int64              `json:"total_amount"`
	Currency    string             `json:"currency"`
}

type paymentRequest struct {
	CheckoutID httpx.ID `json:"checkout_id" validate:"required"`
	Provider   string   `json:"provider" validate:"required,max=32"`
}

type paymentResponse struct {
	ID         httpx.ID   `json:"id"`
	CheckoutID httpx.ID   `json:"checkout_id"`
	Status     string     `json:"status"`
	Amount     int64      `json:"amount"`
	Currency   string     `json:"currency"`
	Provider   string     `json:"provider"`
	PayURL     string     `json:"pay_url,omitempty"`
	Refunded   int64      `json:"refunded,omitempty"`
	PaidAt     *time.Time `json:"paid_at,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
}

// Routes implements httpx.Routes.
func (h *handler) Routes() []httpx.Route {
	cart, orders, mer, pay := []string{"cart"}, []string{"orders"}, []string{"merchant"}, []string{"payments"}
	admin := []string{"admin"}
	perm := func(p user.Permission) []echo.MiddlewareFunc { return []echo.MiddlewareFunc{user.RequirePermission(p)} }
	return []httpx.Route{
		{Method: http.MethodGet, Path: "/api/v1/cart", Handler: h.cart, Summary: "The caller's cart with current prices",
			Tags: cart, Response: cartResponse{}, Auth: true},
		{Method: http.MethodPut, Path: "/api/v1/cart/items/:sku_id", Handler: h.setCartItem,
			Summary: "Put a SKU in the cart with a quantity (replaces the quantity)", Tags: cart,
			Request: cartQuantity{}, Response: cartItemResponse{}, Auth: true},
		{Method: http.MethodDelete, Path: "/api/v1/cart/items/:sku_id", Handler: h.removeCartItem,
			Summary: "Remove a SKU from the cart", Tags: cart, Status: http.StatusNoContent, Auth: true},

		{Method: http.MethodPost, Path: "/api/v1/orders", Handler: h.place,
			Summary: "Check out: one order per merchant under one checkout, prices from the catalog, stock reserved",
			Tags:    orders, Request: placeRequest{}, Response: checkoutResponse{}, Status: http.StatusCreated, Auth: true,
			Idempotent: true},
		{Method: http.MethodGet, Path: "/api/v1/orders", Handler: h.list, Summary: "The caller's orders, newest first",
			Tags: orders, Query: listQuery{}, Response: httpx.List[orderResponse]{}, Auth: true},
		{Method: http.MethodGet, Path: "/api/v1/orders/:id", Handler: h.get, Summary: "One of the caller's orders",
			Tags: orders, Response: orderResponse{}, Auth: true},
		{Method: http.MethodPost, Path: "/api/v1/orders/:id/cancel", Handler: h.cancel,
			Summary: "Cancel an unpaid order; its stock is released", Tags: orders, Response: orderResponse{}, Auth: true},
		{Method: http.MethodPost, Path: "/api/v1/orders/:id/confirm-receipt", Handler: h.confirmReceipt,
			Summary: "Confirm a shipped order arrived", Tags: orders, Response: orderResponse{}, Auth: true},
		{Method: http.MethodPost, Path: "/api/v1/orders/:id/refund", Handler: h.requestRefund,
			Summary: "Ask for a refund of a paid or shipped order, or of a completed one within order.after_sale_window: " +
				"the whole order, or with items those units (several partial refunds up to the total; 409 " +
				"order.refund_exceeds beyond it)", Tags: orders, Request: refundRequest{},
			Response: orderResponse{}, Auth: true},
		{Method: http.MethodPost, Path: "/api/v1/orders/:id/refund/escalate", Handler: h.escalateRefund,
			Summary: "Take a refund request the merchant rejected to the platform (refund_disputed); once per " +
				"request, 409 order.refund_not_rejected otherwise", Tags: orders, Response: orderResponse{}, Auth: true},

		{Method: http.MethodGet, Path: "/api/v1/merchant/orders", Handler: h.merchantList,
			Summary: "The merchant's orders of every shard, newest first", Tags: mer, Query: listQuery{},
			Response: httpx.List[orderResponse]{}, Auth: true, Middleware: perm(user.PermMerchantOrders)},
		{Method: http.MethodGet, Path: "/api/v1/merchant/orders/:id", Handler: h.merchantGet,
			Summary: "One of the merchant's orders", Tags: mer, Response: orderResponse{}, Auth: true,
			Middleware: perm(user.PermMerchantOrders)},
		{Method: http.MethodPost, Path: "/api/v1/merchant/orders/:id/ship", Handler: h.ship,
			Summary: "Ship a paid order", Tags: mer, Request: shipRequest{}, Response: orderResponse{}, Auth: true,
			Middleware: perm(user.PermMerchantOrders)},
		{Method: http.MethodPost, Path: "/api/v1/merchant/orders/:id/refund/approve", Handler: h.approveRefund,
			Summary: "Approve a refund: the money goes back through the gateway and the stock returns", Tags: mer,
			Response: orderResponse{}, Auth: true, Middleware: perm(user.PermMerchantRefunds)},
		{Method: http.MethodPost, Path: "/api/v1/merchant/orders/:id/refund/reject", Handler: h.rejectRefund,
			Summary: "Reject a refund: the order returns to its previous status", Tags: mer,
			Response: orderResponse{}, Auth: true, Middleware: perm(user.PermMerchantRefunds)},

		{Method: http.MethodPost, Path: "/api/v1/payments", Handler: h.createPayment,
			Summary: "Pay a checkout with a provider", Tags: pay, Request: paymentRequest{}, Response: paymentResponse{},
			Status: http.StatusCreated, Auth: true, Idempotent: true},
		{Method: http.MethodGet, Path: "/api/v1/payments/:id", Handler: h.getPayment, Summary: "One of the caller's payments",
			Tags: pay, Response: paymentResponse{}, Auth: true},
		{Method: http.MethodPost, Path: "/api/v1/payments/notify/:provider", Handler: h.notify,
			Summary: "A payment gateway's asynchronous notification (form-encoded, signature-verified, replay-safe)",
			Tags:    pay, Produces: "text/plain"},
		{Method: http.MethodPost, Path: "/api/v1/payments/:id/sandbox/complete", Handler: h.sandboxComplete,
			Summary: "Sandbox only: the sandbox gateway pays and notifies through the real path", Tags: pay,
			Response: paymentResponse{}, Auth: true},

		{Method: http.MethodGet, Path: "/api/v1/admin/refunds/failed", Handler: h.failedRefunds,
			Summary: "Automatic refunds the gateway did not carry out (refused: waiting for an operator; retrying: " +
				"transient, retried with backoff), newest first", Tags: admin,
			Response: httpx.List[parkedRefundResponse]{}, Auth: true, Middleware: perm(user.PermOrdersView)},
		{Method: http.MethodPost, Path: "/api/v1/admin/refunds/:order_id/retry", Handler: h.retryRefund,
			Summary: "Try a parked refund again now (order_id: the order's, or for a mismatched payment the " +
				"payment's); the same refund ID, so it refunds once. 409 when nothing is parked", Tags: admin,
			Response: parkedRefundResponse{}, Auth: true, Middleware: perm(user.PermSettlementManage)},
		{Method: http.MethodGet, Path: "/api/v1/admin/orders", Handler: h.adminList,
			Summary: "Every order of every shard, newest first (operator)", Tags: admin, Query: listQuery{},
			Response: []orderResponse{}, Auth: true, Middleware: perm(user.PermOrdersView)},
		{Method: http.MethodGet, Path: "/api/v1/admin/orders/:id", Handler: h.adminGet,
			Summary: "Any order, with the refunds carried out (operator)", Tags: admin,
			Response: orderResponse{}, Auth: true, Middleware: perm(user.PermOrdersView)},
		// Rulings move money (or refuse to), like a refund retry: settlement.manage.
		{Method: http.MethodPost, Path: "/api/v1/admin/orders/:id/refund/approve", Handler: h.approveDispute,
			Summary: "Rule a disputed refund for the buyer: refunded as a merchant's approval (money back through " +
				"the gateway, stock returned); 409 unless refund_disputed", Tags: admin,
			Response: orderResponse{}, Auth: true, Middleware: perm(user.PermSettlementManage)},
		{Method: http.MethodPost, Path: "/api/v1/admin/orders/:id/refund/reject", Handler: h.rejectDispute,
			Summary: "Rule a disputed refund for the merchant: the order returns to its status before the request " +
				"and that request cannot be escalated again; 409 unless refund_disputed", Tags: admin,
			Response: orderResponse{}, Auth: true, Middleware: perm(user.PermSettlementManage)},
	}
}

func toOrderResponse(o Order) orderResponse {
	out := orderResponse{ID: httpx.ID(o.ID), CheckoutID: httpx.ID(o.CheckoutID), MerchantID: httpx.ID(o.MerchantID),
		Status: string(o.Status), TotalAmount: o.TotalAmount, Currency: o.Currency, Items: make([]itemResponse, len(o.Items)),
		Address: addressResponse(o.Address), Carrier: o.Carrier, TrackingNo: o.TrackingNo, RefundReason: o.RefundReason,
		StockLost: o.StockLost, ExpiresAt: o.ExpiresAt, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
		RefundItems: refundItemsOut(o.RefundItems), RefundedAmount: o.RefundedAmount}
	if o.FlashSaleID != 0 {
		id := httpx.ID(o.FlashSaleID)
		out.FlashSaleID = &id
	}
	for i, it := range o.Items {
		out.Items[i] = itemResponse{SKUID: httpx.ID(it.SKUID), ProductID: httpx.ID(it.ProductID), Title: it.Title,
			Attrs: nonNil(it.Attrs), Quantity: it.Quantity, Price: it.Price, RefundedQuantity: it.RefundedQuantity}
	}
	for _, f := range o.Refunds {
		out.Refunds = append(out.Refunds, refundResponse{ID: httpx.ID(f.ID), Amount: f.Amount,
			Items: refundItemsOut(f.Items), Reason: f.Reason, AfterCompletion: f.AfterCompletion, CreatedAt: f.CreatedAt})
	}
	out.PaidAt, out.ShippedAt, out.CompletedAt = timeOrNil(o.PaidAt), timeOrNil(o.ShippedAt), timeOrNil(o.CompletedAt)
	return out
}

// timeOrNil is nil for the zero time (the field is left out).
func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func toPaymentResponse(p Payment) paymentResponse {
	out := paymentResponse{ID: httpx.ID(p.ID), CheckoutID: httpx.ID(p.CheckoutID), Status: string(p.Status),
		Amount: p.Amount, Currency: p.Currency, Provider: p.Provider, PayURL: p.PayURL, Refunded: p.Refunded,
		CreatedAt: p.CreatedAt}
	if !p.PaidAt.IsZero() {
		t := p.PaidAt
		out.PaidAt = &t
	}
	return out
}

func toCartItem(it CartItem) cartItemResponse {
	out := cartItemResponse{SKUID: httpx.ID(it.SKUID), Title: it.Title, Attrs: it.Attrs, Quantity: it.Quantity,
		Price: it.Price, Currency: Currency, OnSale: it.OnSale}
	if it.OnSale {
		pid, mid := httpx.ID(it.ProductID), httpx.ID(it.MerchantID)
		out.ProductID, out.MerchantID = &pid, &mid
	}
	return out
}

// Cursors: created_at (µs since the epoch) and ID, 16 bytes.
func orderCursor(o orderResponse) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(o.CreatedAt.UnixMicro()))
	binary.BigEndian.PutUint64(b[8:], uint64(o.ID.Int64()))
	return b
}

var errBadCursor = errs.ErrInvalid.WithDetail("query parameter \"cursor\" is not a cursor this API issued").
	WithFields(errs.FieldError{Field: "cursor", Message: "is malformed"})

func parseCursor(b []byte) (*Cursor, error) {
	if b == nil {
		return nil, nil
	}
	if len(b) != 16 {
		return nil, errBadCursor
	}
	us, id := int64(binary.BigEndian.Uint64(b)), int64(binary.BigEndian.Uint64(b[8:]))
	if us <= 0 || id <= 0 {
		return nil, errBadCursor
	}
	return &Cursor{CreatedAt: time.UnixMicro(us).UTC(), ID: id}, nil
}

func (h *handler) listQuery(c echo.Context) (ListQuery, httpx.Page, error) {
	var q listQuery
	if err := httpx.BindQuery(c, &q); err != nil {
		return ListQuery{}, httpx.Page{}, err
	}
	p, err := httpx.PageFrom(c)
	if err != nil {
		return ListQuery{}, httpx.Page{}, err
	}
	cur, err := parseCursor(p.Cursor)
	if err != nil {
		return ListQuery{}, httpx.Page{}, err
	}
	return ListQuery{Status: Status(q.Status), Limit: p.Fetch(), Before: cur}, p, nil
}

func orderPage(c echo.Context, os []Order, p httpx.Page) error {
	out := make([]orderResponse, len(os))
	for i, o := range os {
		out[i] = toOrderResponse(o)
	}
	return c.JSON(http.StatusOK, httpx.PageOf(out, p, orderCursor))
}

func (h *handler) cart(c echo.Context) error {
	ctx := c.Request().Context()
	items, err := h.svc.Cart(ctx, authn.UserID(ctx))
	if err != nil {
		return err
	}
	out := cartResponse{Items: make([]cartItemResponse, len(items)), Currency: Currency}
	for i, it := range items {
		out.Items[i] = toCartItem(it)
		out.TotalAmount += it.Price * it.Quantity
	}
	return c.JSON(http.StatusOK, out)
}

func (h *handler) setCartItem(c echo.Context) error {
	sku, err := httpx.ParamID(c, "sku_id")
	if err != nil {
		return err
	}
	var in cartQuantity
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	ctx := c.Request().Context()
	it, err := h.svc.SetCartItem(ctx, authn.UserID(ctx), sku.Int64(), in.Quantity)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toCartItem(it))
}

func (h *handler) removeCartItem(c echo.Context) error {
	sku, err := httpx.ParamID(c, "sku_id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := h.svc.RemoveCartItem(ctx, authn.UserID(ctx), sku.Int64()); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handler) place(c echo.Context) error {
	var in placeRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	ctx := c.Request().Context()
	cmd := PlaceOrder{BuyerID: authn.UserID(ctx), AddressID: in.AddressID.Int64(),
		IdempotencyKey: c.Request().Header.Get(idempotency.HeaderKey), Resumed: idempotency.Resumed(ctx)}
	for _, it := range in.Items {
		cmd.Items = append(cmd.Items, LineInput{SKUID: it.SKUID.Int64(), Quantity: it.Quantity})
	}
	co, err := h.svc.Place(ctx, cmd)
	if err != nil {
		return err
	}
	out := checkoutResponse{CheckoutID: httpx.ID(co.ID), TotalAmount: co.TotalAmount, Currency: co.Currency,
		ExpiresAt: co.ExpiresAt, Orders: make([]orderResponse, len(co.Orders))}
	for i, o := range co.Orders {
		out.Orders[i] = toOrderResponse(o)
	}
	return c.JSON(http.StatusCreated, out)
}

func (h *handler) list(c echo.Context) error {
	q, p, err := h.listQuery(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	os, err := h.svc.List(ctx, authn.UserID(ctx), q)
	if err != nil {
		return err
	}
	return orderPage(c, os, p)
}

// byID runs fn with the :id path parameter; a malformed ID is 404 (no such order).
func byID(c echo.Context, fn func(id int64) (Order, error)) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return ErrNotFound
	}
	o, err := fn(id.Int64())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toOrderResponse(o))
}

func (h *handler) get(c echo.Context) error {
	ctx := c.Request().Context()
	return byID(c, func(id int64) (Order, error) { return h.svc.Get(ctx, authn.UserID(ctx), id) })
}

func (h *handler) cancel(c echo.Context) error {
	ctx := c.Request().Context()
	return byID(c, func(id int64) (Order, error) { return h.svc.Cancel(ctx, authn.UserID(ctx), id) })
}

func (h *handler) confirmReceipt(c echo.Context) error {
	ctx := c.Request().Context()
	return byID(c, func(id int64) (Order, error) { return h.svc.ConfirmReceipt(ctx, authn.UserID(ctx), id) })
}

func (h *handler) requestRefund(c echo.Context) error {
	ctx := c.Request().Context()
	return byID(c, func(id int64) (Order, error) {
		// Another buyer's order is 404 before the body is looked at.
		if _, err := h.svc.Get(ctx, authn.UserID(ctx), id); err != nil {
			return Order{}, err
		}
		var in refundRequest
		if err := httpx.Bind(c, &in); err != nil {
			return Order{}, err
		}
		var items []RefundItem
		if in.Items != nil {
			items = make([]RefundItem, len(in.Items))
			for i, it := range in.Items {
				items[i] = RefundItem{SKUID: int64(it.SKUID), Quantity: it.Quantity}
			}
		}
		return h.svc.RequestRefund(ctx, authn.UserID(ctx), id, in.Reason, items)
	})
}

func (h *handler) escalateRefund(c echo.Context) error {
	ctx := c.Request().Context()
	return byID(c, func(id int64) (Order, error) { return h.svc.EscalateRefund(ctx, authn.UserID(ctx), id) })
}

func (h *handler) approveDispute(c echo.Context) error {
	ctx := c.Request().Context()
	return byID(c, func(id int64) (Order, error) { return h.svc.ApproveDispute(ctx, id) })
}

func (h *handler) rejectDispute(c echo.Context) error {
	ctx := c.Request().Context()
	return byID(c, func(id int64) (Order, error) { return h.svc.RejectDispute(ctx, id) })
}

func (h *handler) adminList(c echo.Context) error {
	q, p, err := h.listQuery(c)
	if err != nil {
		return err
	}
	os, err := h.svc.AdminOrders(c.Request().Context(), q)
	if err != nil {
		return err
	}
	return orderPage(c, os, p)
}

func (h *handler) adminGet(c echo.Context) error {
	ctx := c.Request().Context()
	return byID(c, func(id int64) (Order, error) { return h.svc.AdminOrder(ctx, id) })
}

func (h *handler) merchantList(c echo.Context) error {
	ctx := c.Request().Context()
	mid, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	q, p, err := h.listQuery(c)
	if err != nil {
		return err
	}
	os, err := h.svc.MerchantOrders(ctx, mid, q)
	if err != nil {
		return err
	}
	return orderPage(c, os, p)
}

// merchantByID is byID for the caller's merchant.
func (h *handler) merchantByID(c echo.Context, fn func(mid, id int64) (Order, error)) error {
	ctx := c.Request().Context()
	mid, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	return byID(c, func(id int64) (Order, error) { return fn(mid, id) })
}

func (h *handler) merchantGet(c echo.Context) error {
	ctx := c.Request().Context()
	return h.merchantByID(c, func(mid, id int64) (Order, error) { return h.svc.MerchantOrder(ctx, mid, id) })
}

func (h *handler) ship(c echo.Context) error {
	ctx := c.Request().Context()
	return h.merchantByID(c, func(mid, id int64) (Order, error) {
		// Another merchant's order is 404 before the body is looked at.
		if _, err := h.svc.MerchantOrder(ctx, mid, id); err != nil {
			return Order{}, err
		}
		var in shipRequest
		if err := httpx.Bind(c, &in); err != nil {
			return Order{}, err
		}
		return h.svc.Ship(ctx, mid, id, in.Carrier, in.TrackingNo)
	})
}

func (h *handler) approveRefund(c echo.Context) error {
	ctx := c.Request().Context()
	return h.merchantByID(c, func(mid, id int64) (Order, error) { return h.svc.ApproveRefund(ctx, mid, id) })
}

func (h *handler) rejectRefund(c echo.Context) error {
	ctx := c.Request().Context()
	return h.merchantByID(c, func(mid, id int64) (Order, error) { return h.svc.RejectRefund(ctx, mid, id) })
}

func (h *handler) createPayment(c echo.Context) error {
	var in paymentRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	ctx := c.Request().Context()
	p, err := h.svc.CreatePayment(ctx, authn.UserID(ctx), in.CheckoutID.Int64(), in.Provider)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toPaymentResponse(p))
}

func (h *handler) getPayment(c echo.Context) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return ErrPaymentNotFound
	}
	ctx := c.Request().Context()
	p, err := h.svc.Payment(ctx, authn.UserID(ctx), id.Int64())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toPaymentResponse(p))
}

func (h *handler) notify(c echo.Context) error {
	req := c.Request()
	if err := req.ParseForm(); err != nil {
		return ErrBadNotification.WithDetail("the body is not a form")
	}
	ack, err := h.svc.HandleNotification(req.Context(), c.Param("provider"), req.PostForm)
	if err != nil {
		return err
	}
	return c.String(http.StatusOK, ack)
}

func (h *handler) sandboxComplete(c echo.Context) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return ErrPaymentNotFound
	}
	ctx := c.Request().Context()
	p, err := h.svc.SandboxComplete(ctx, authn.UserID(ctx), id.Int64())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toPaymentResponse(p))
}

// Parked refunds (refunds.go).

type parkedRefundResponse struct {
	RefundID    httpx.ID   `json:"refund_id"`
	Kind        string     `json:"kind"`
	OrderID     *httpx.ID  `json:"order_id,omitempty"` // absent for a mismatched payment
	PaymentID   httpx.ID   `json:"payment_id"`
	Provider    string     `json:"provider"`
	Amount      int64      `json:"amount"`
	Currency    string     `json:"currency"`
	State       string     `json:"state"`
	Reason      string     `json:"reason,omitempty"`
	Attempts    int        `json:"attempts"`
	FailedAt    *time.Time `json:"failed_at,omitempty"`
	NextRetryAt *time.Time `json:"next_retry_at,omitempty"` // only while retrying
}

func toParkedRefundResponse(f ParkedRefund) parkedRefundResponse {
	out := parkedRefundResponse{RefundID: httpx.ID(f.RefundID), Kind: string(f.Kind), PaymentID: httpx.ID(f.PaymentID),
		Provider: f.Provider, Amount: f.Amount, Currency: "CNY", State: string(f.State), Reason: f.Reason,
		Attempts: f.Attempts}
	if f.OrderID != 0 {
		id := httpx.ID(f.OrderID)
		out.OrderID = &id
	}
	if f.State != RefundDone {
		t := f.FailedAt
		out.FailedAt = &t
	}
	if f.State == RefundRetrying {
		t := f.NextRetryAt
		out.NextRetryAt = &t
	}
	return out
}

func (h *handler) failedRefunds(c echo.Context) error {
	p, before, err := httpx.IDPageFrom(c)
	if err != nil {
		return err
	}
	rows, err := h.svc.FailedRefunds(c.Request().Context(), before, p.Fetch())
	if err != nil {
		return err
	}
	out := make([]parkedRefundResponse, len(rows))
	for i, f := range rows {
		out[i] = toParkedRefundResponse(f)
	}
	return c.JSON(http.StatusOK, httpx.PageOf(out, p, func(last parkedRefundResponse) []byte {
		return httpx.IDCursor(last.RefundID.Int64())
	}))
}

func (h *handler) retryRefund(c echo.Context) error {
	id, err := httpx.ParamID(c, "order_id")
	if err != nil {
		return err
	}
	f, err := h.svc.RetryRefund(c.Request().Context(), id.Int64())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toParkedRefundResponse(f))
}
