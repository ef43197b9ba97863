package order_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/merchant"
	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/order/payment"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/stock"
	"github.com/mallhq/mall/internal/user"
)

type response = apptest.Response

// testProvider is a gateway for tests named "sandbox": HMAC-SHA256-signed notifications,
// in-memory state. It also implements order.SandboxPayer.
type testProvider struct {
	key []byte

	mu      sync.Mutex
	created map[int64]payment.Payment
	paid    map[int64]bool
	closed  map[int64]bool
	refunds map[int64]payment.RefundRequest // by refund ID
	// refuseRefund, when set, answers a refund before the provider carries it out (a
	// non-nil error fails it: payment.ErrRefundRefused for a refusal, any other transient).
	refuseRefund func(payment.RefundRequest) error
}

func newTestProvider() *testProvider {
	return &testProvider{key: []byte("test-secret"), created: map[int64]payment.Payment{}, paid: map[int64]bool{},
		closed: map[int64]bool{}, refunds: map[int64]payment.RefundRequest{}}
}

var _ order.SandboxPayer = (*testProvider)(nil)

func (p *testProvider) Name() string { return "sandbox" }

func (p *testProvider) Create(_ context.Context, pay payment.Payment) (payment.Created, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.created[pay.ID] = pay
	return payment.Created{PayURL: "https://pay.example.com/" + strconv.FormatInt(pay.ID, 10)}, nil
}

func (p *testProvider) sign(f url.Values) string {
	m := hmac.New(sha256.New, p.key)
	fmt.Fprintf(m, "%s|%s|%s|%s|%s", f.Get("out_trade_no"), f.Get("trade_no"), f.Get("amount"), f.Get("status"), f.Get("notify_id"))
	return hex.EncodeToString(m.Sum(nil))
}

func (p *testProvider) VerifyNotification(_ context.Context, f url.Values) (payment.Notification, error) {
	if !hmac.Equal([]byte(f.Get("sign")), []byte(p.sign(f))) {
		return payment.Notification{}, payment.ErrBadNotification
	}
	id, err1 := strconv.ParseInt(f.Get("out_trade_no"), 10, 64)
	amount, err2 := strconv.ParseInt(f.Get("amount"), 10, 64)
	if err1 != nil || err2 != nil {
		return payment.Notification{}, payment.ErrBadNotification
	}
	return payment.Notification{PaymentID: id, TradeNo: f.Get("trade_no"), Amount: amount,
		Status: payment.Status(f.Get("status")), NotifyID: f.Get("notify_id"), PaidAt: time.Now()}, nil
}

func (p *testProvider) Ack() string { return "success" }

func (p *testProvider) Query(_ context.Context, id int64) (payment.State, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paid[id] {
		return payment.State{Status: payment.StatusSucceeded, Amount: p.created[id].Amount}, nil
	}
	if p.closed[id] {
		return payment.State{Status: payment.StatusClosed}, nil
	}
	return payment.State{Status: payment.StatusPending}, nil
}

func (p *testProvider) Close(_ context.Context, id int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed[id] = true
	return nil
}

func (p *testProvider) Refund(_ context.Context, r payment.RefundRequest) (payment.RefundResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paid[r.PaymentID] {
		return payment.RefundResult{}, errors.New("not paid")
	}
	if p.refuseRefund != nil {
		if err := p.refuseRefund(r); err != nil {
			return payment.RefundResult{}, err
		}
	}
	p.refunds[r.RefundID] = r
	var total int64
	for _, x := range p.refunds {
		if x.PaymentID == r.PaymentID {
			total += x.Amount
		}
	}
	return payment.RefundResult{Refunded: total}, nil
}

// notification is a signed notification form (tamper with it after signing to forge).
func (p *testProvider) notification(paymentID, amount int64, notifyID string) url.Values {
	f := url.Values{"out_trade_no": {strconv.FormatInt(paymentID, 10)}, "trade_no": {"T" + strconv.FormatInt(paymentID, 10)},
		"amount": {strconv.FormatInt(amount, 10)}, "status": {"succeeded"}, "notify_id": {notifyID}}
	f.Set("sign", p.sign(f))
	return f
}

func (p *testProvider) Pay(_ context.Context, pay payment.Payment) (url.Values, error) {
	p.mu.Lock()
	p.paid[pay.ID] = true
	p.mu.Unlock()
	return p.notification(pay.ID, pay.Amount, "N"+strconv.FormatInt(pay.ID, 10)), nil
}

type harness struct {
	*apptest.App
	t        testing.TB
	admin    string
	catalog  catalog.Service
	stock    stock.Service
	orders   order.Service
	provider *testProvider
	gateways gateways // newAppHarness: the application's own payment gateways
	category int64
}

// testConfig: a long payment timeout (the timeout test sets its own), a fast sweeper, no
// auto-completion (its test sets its own), the default after-sale window.
func testConfig() order.Config {
	return order.Config{PaymentTimeout: 30 * time.Minute, HoldGrace: time.Minute, SweepInterval: 200 * time.Millisecond,
		PartitionMonths: 3, AfterSaleWindow: 7 * 24 * time.Hour}
}

func newHarness(t testing.TB, cfg order.Config, extra ...fx.Option) *harness {
	t.Helper()
	h := &harness{t: t, provider: newTestProvider()}
	h.App = apptest.New(t, apptest.Options{
		Modules: append([]fx.Option{user.Module, merchant.Module, stock.Module, catalog.Module, order.Module,
			fx.Replace(noReview(), cfg),
			fx.Provide(order.AsProvider(func() *testProvider { return h.provider }))}, extra...),
		Populate: []any{&h.catalog, &h.stock, &h.orders},
	})
	h.setUp()
	return h
}

// noReview is the default catalog configuration with product review off.
func noReview() catalog.Config {
	c := catalog.ConfigSection.Default()
	c.ReviewRequired = false
	return c
}

// gateways are the payment providers of the application.
type gateways struct {
	fx.In
	All []payment.Provider `group:"payment_providers"`
}

// sandbox is the application's own sandbox gateway (newAppHarness).
func (h *harness) sandbox() *payment.Sandbox {
	h.t.Helper()
	for _, p := range h.gateways.All {
		if sb, ok := p.(*payment.Sandbox); ok {
			return sb
		}
	}
	h.t.Fatal("the application has no sandbox gateway")
	return nil
}

// newAppHarness runs the whole application as `mall serve` wires it, gateways included
// (the real sandbox from payments.sandbox.*), with product review off.
func newAppHarness(t testing.TB) *harness {
	t.Helper()
	h := &harness{t: t}
	cfg := catalog.ConfigSection.With(apptest.Config(t), func(c *catalog.Config) { c.ReviewRequired = false })
	h.App = apptest.Start(t, cfg, apptest.Options{Populate: []any{&h.catalog, &h.stock, &h.orders, &h.gateways}})
	h.setUp()
	return h
}

// setUp logs the admin in and creates the category products go in.
func (h *harness) setUp() {
	t := h.t
	_, tk := h.Admin()
	h.admin = tk.AccessToken
	id, err := h.catalog.CreateCategory(context.Background(), catalog.NewCategory{Name: "cups"})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.catalog.SetAttributes(context.Background(), id, catalog.Template{Sale: []catalog.Attribute{{Name: "color"}}}); err != nil {
		t.Fatal(err)
	}
	h.category = id
}

func (h *harness) req(method, path string, body any, token string, headers ...string) response {
	h.t.Helper()
	return h.Req(method, path, body, append(apptest.Bearer(token), headers...)...)
}

type idBody struct {
	ID string `json:"id"`
}

// merchant is a fresh approved merchant and its owner's token.
func (h *harness) merchant() (int64, string) {
	h.t.Helper()
	id, _, tok := h.Merchant(h.admin)
	return id, tok
}

// sku creates an on-sale product of the merchant with one SKU and returns the SKU ID.
func (h *harness) sku(merchantID, price, stockUnits int64) int64 {
	h.t.Helper()
	sku, _ := h.product(merchantID, price, stockUnits)
	return sku
}

// product is sku returning the product ID too.
func (h *harness) product(merchantID, price, stockUnits int64) (skuID, productID int64) {
	h.t.Helper()
	ctx := context.Background()
	p, err := h.catalog.CreateProduct(ctx, merchantID, catalog.ProductInput{Title: "Cup " + strconv.FormatInt(price, 10),
		Description: "a cup", CategoryID: h.category,
		SKUs: []catalog.SKUInput{{Code: "c1", Attrs: map[string]string{"color": "red"}, Price: price, Stock: stockUnits}}})
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.catalog.Submit(ctx, merchantID, p.ID); err != nil {
		h.t.Fatal(err)
	}
	return p.SKUs[0].ID, p.ID
}

type buyer struct {
	id      int64
	token   string
	address string
}

func (h *harness) buyer() buyer {
	h.t.Helper()
	acc, tk := h.NewUser("buyer")
	return buyer{id: mustInt(h.t, acc.ID), token: tk.AccessToken, address: h.Address(tk.AccessToken)}
}

type line struct {
	sku int64
	qty int64
}

func placeBody(b buyer, lines ...line) map[string]any {
	items := make([]map[string]any, len(lines))
	for i, l := range lines {
		items[i] = map[string]any{"sku_id": strconv.FormatInt(l.sku, 10), "quantity": l.qty}
	}
	return map[string]any{"items": items, "address_id": b.address}
}

func newKey() string {
	return "key-" + strconv.FormatInt(time.Now().UnixNano(), 36) + apptest.RandomIP()
}

type itemBody struct {
	SKUID    string `json:"sku_id"`
	Quantity int64  `json:"quantity"`
	Price    int64  `json:"price"`
}

type orderBody struct {
	ID          string     `json:"id"`
	CheckoutID  string     `json:"checkout_id"`
	MerchantID  string     `json:"merchant_id"`
	Status      string     `json:"status"`
	TotalAmount int64      `json:"total_amount"`
	Currency    string     `json:"currency"`
	Items       []itemBody `json:"items"`
	TrackingNo  string     `json:"tracking_no"`
	CreatedAt   time.Time  `json:"created_at"`
}

type checkoutBody struct {
	CheckoutID  string      `json:"checkout_id"`
	TotalAmount int64       `json:"total_amount"`
	Currency    string      `json:"currency"`
	ExpiresAt   time.Time   `json:"expires_at"`
	Orders      []orderBody `json:"orders"`
}

type paymentBody struct {
	ID         string `json:"id"`
	CheckoutID string `json:"checkout_id"`
	Status     string `json:"status"`
	Amount     int64  `json:"amount"`
	Currency   string `json:"currency"`
	Provider   string `json:"provider"`
	PayURL     string `json:"pay_url"`
}

// place checks out and returns the checkout.
func (h *harness) place(b buyer, lines ...line) checkoutBody {
	h.t.Helper()
	var c checkoutBody
	h.req(http.MethodPost, "/api/v1/orders", placeBody(b, lines...), b.token, "Idempotency-Key", newKey()).
		Want(h.t, http.StatusCreated, "").Decode(h.t, &c)
	return c
}

// pay creates a sandbox payment for the checkout and completes it.
func (h *harness) pay(b buyer, checkoutID string) paymentBody {
	h.t.Helper()
	var p paymentBody
	h.req(http.MethodPost, "/api/v1/payments", map[string]string{"checkout_id": checkoutID, "provider": "sandbox"},
		b.token, "Idempotency-Key", newKey()).Want(h.t, http.StatusCreated, "").Decode(h.t, &p)
	h.req(http.MethodPost, "/api/v1/payments/"+p.ID+"/sandbox/complete", nil, b.token).Want(h.t, http.StatusOK, "")
	return p
}

func (h *harness) getOrder(b buyer, id string) orderBody {
	h.t.Helper()
	var o orderBody
	h.req(http.MethodGet, "/api/v1/orders/"+id, nil, b.token).Want(h.t, http.StatusOK, "").Decode(h.t, &o)
	return o
}

func (h *harness) level(sku int64) stock.Level {
	h.t.Helper()
	ls, err := h.stock.Levels(context.Background(), sku)
	if err != nil {
		h.t.Fatal(err)
	}
	return ls[sku]
}

// eventually polls cond until it holds or 20 s pass.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("%s did not happen within 20s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *harness) checkStock() {
	h.t.Helper()
	rep, err := h.stock.Check(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	if !rep.OK() {
		h.t.Fatalf("stock check: %+v", rep.Violations)
	}
}

// shardOf is the physical database holding an ID's rows.
func (h *harness) shardOf(id string) *sqldb.DB { return h.Cluster.ForID(mustInt(h.t, id)) }

// orderEvents counts the order's events of a type in its shard's outbox.
func (h *harness) orderEvents(orderID, typ string) int {
	h.t.Helper()
	var n int
	if err := h.shardOf(orderID).GetContext(context.Background(), &n,
		`SELECT COUNT(*) FROM platform_outbox WHERE topic = ? AND aggregate_id = ? AND event_type = ?`,
		order.Topic, orderID, typ); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// snapshot is every order-module row of every shard (plus outbox counts), for "nothing
// changed" checks.
func (h *harness) snapshot() string {
	h.t.Helper()
	out := ""
	for _, db := range h.Cluster.Shards() {
		for _, q := range []string{
			`SELECT CONCAT_WS('|', id, status, prev_status, carrier, tracking_no, refund_reason, updated_at) FROM order_orders ORDER BY id`,
			`SELECT CONCAT_WS('|', id, status, trade_no, refunded, updated_at) FROM order_payments ORDER BY id`,
			`SELECT CONCAT_WS('|', COUNT(*), COALESCE(MAX(id), 0)) FROM platform_outbox`,
			`SELECT CONCAT_WS('|', provider, notify_id, payment_id, mismatch) FROM order_payment_notifications ORDER BY provider, notify_id`,
		} {
			var rows []string
			if err := db.SelectContext(context.Background(), &rows, q); err != nil {
				h.t.Fatal(err)
			}
			out += db.Name + ": " + fmt.Sprint(rows) + "\n"
		}
	}
	return out
}

func mustInt(t testing.TB, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

func id(n int64) string { return strconv.FormatInt(n, 10) }

// atOnce runs n calls of f concurrently, released together, and returns their results by
// index.
func atOnce(n int, f func(i int) (response, error)) ([]response, []error) {
	res, errs := make([]response, n), make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			res[i], errs[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	return res, errs
}
