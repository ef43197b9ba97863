package stock_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/mallhq/mall/internal/stock"
)

const (
	merchantA int64 = 7001
	merchantB int64 = 7002
)

func (h *harness) initSKU(skuID, merchantID, available int64) {
	h.t.Helper()
	if err := h.stock.Init(context.Background(), skuID, merchantID, available); err != nil {
		h.t.Fatalf("Init(%d, %d, %d): %v", skuID, merchantID, available, err)
	}
}

func TestSetAndGetOwnSKU(t *testing.T) {
	h := newHarness(t)
	tok := h.newUser("owner", merchantA)
	h.initSKU(101, merchantA, 10)

	var got levelBody
	h.req("GET", stockPath(101), nil, tok).Want(t, 200, "").Decode(t, &got)
	if got != (levelBody{SKUID: "101", Available: 10}) {
		t.Fatalf("GET = %+v", got)
	}
	h.req("PUT", stockPath(101), map[string]any{"available": 25}, tok).Want(t, 200, "").Decode(t, &got)
	if got != (levelBody{SKUID: "101", Available: 25}) {
		t.Fatalf("PUT = %+v", got)
	}
	h.req("GET", stockPath(101), nil, tok).Want(t, 200, "").Decode(t, &got)
	if got.Available != 25 {
		t.Fatalf("GET after PUT = %+v", got)
	}
	// Zero and the maximum are valid.
	for _, v := range []int64{0, stock.MaxAvailable} {
		h.req("PUT", stockPath(101), map[string]any{"available": v}, tok).Want(t, 200, "").Decode(t, &got)
		if got.Available != v {
			t.Fatalf("PUT %d = %+v", v, got)
		}
	}
	if r := h.row(101); r.Available != stock.MaxAvailable || r.MerchantID != merchantA || r.Reserved != 0 || r.Sold != 0 || r.Version != 4 {
		t.Fatalf("row = %+v", r)
	}
	evs := h.events(101)
	if len(evs) != 4 {
		t.Fatalf("%d events, want 4 (init + 3 sets): %+v", len(evs), evs)
	}
	for i, want := range []int64{10, 25, 0, stock.MaxAvailable} {
		e := evs[i]
		if e.SKUID != 101 || e.MerchantID != merchantA || e.Available != want || e.Version != int64(i+1) {
			t.Fatalf("event %d = %+v, want available %d version %d", i, e, want, i+1)
		}
	}
}

func TestAnotherMerchantsSKUIsNotFound(t *testing.T) {
	h := newHarness(t)
	h.initSKU(201, merchantA, 10)
	other := h.newUser("other", merchantB)
	before, eventsBefore := h.row(201), len(h.events(201))

	h.req("GET", stockPath(201), nil, other).Want(t, 404, "stock.sku_not_found")
	h.req("PUT", stockPath(201), map[string]any{"available": 999}, other).Want(t, 404, "stock.sku_not_found")
	// A SKU that does not exist answers the same.
	h.req("GET", stockPath(999999), nil, other).Want(t, 404, "stock.sku_not_found")
	h.req("PUT", stockPath(999999), map[string]any{"available": 1}, other).Want(t, 404, "stock.sku_not_found")

	if after := h.row(201); after != before {
		t.Fatalf("row changed: %+v -> %+v", before, after)
	}
	if n := len(h.events(201)); n != eventsBefore {
		t.Fatalf("events: %d -> %d", eventsBefore, n)
	}
	if _, err := h.stock.Set(context.Background(), merchantB, 201, 5); !errors.Is(err, stock.ErrNotFound) {
		t.Fatalf("Set by another merchant: %v", err)
	}
	if _, err := h.stock.Get(context.Background(), merchantB, 201); !errors.Is(err, stock.ErrNotFound) {
		t.Fatalf("Get by another merchant: %v", err)
	}
}

func TestBuyerAndAnonymousAreRefused(t *testing.T) {
	h := newHarness(t)
	h.initSKU(301, merchantA, 10)
	buyer := h.newUser("buyer", 0)

	h.req("GET", stockPath(301), nil, buyer).Want(t, 403, "auth.forbidden")
	h.req("PUT", stockPath(301), map[string]any{"available": 1}, buyer).Want(t, 403, "auth.forbidden")
	h.req("GET", stockPath(301), nil, "").Want(t, 401, "")
	h.req("PUT", stockPath(301), map[string]any{"available": 1}, "").Want(t, 401, "")
	if r := h.row(301); r.Available != 10 || r.Version != 1 {
		t.Fatalf("row = %+v", r)
	}
}

func TestSetValidation(t *testing.T) {
	h := newHarness(t)
	tok := h.newUser("owner", merchantA)
	h.initSKU(401, merchantA, 10)
	before := h.row(401)

	tests := []struct {
		name string
		give string
		want string // problem code
	}{
		{"negative", `{"available": -1}`, "request.validation"},
		{"above max", `{"available": 1000000001}`, "request.validation"},
		{"huge", `{"available": 100000000000000000000}`, "request.invalid"},
		{"fraction", `{"available": 1.5}`, "request.invalid"},
		{"exponent", `{"available": 1e3}`, "request.invalid"},
		{"string", `{"available": "5"}`, "request.invalid"},
		{"null", `{"available": null}`, "request.validation"},
		{"missing", `{}`, "request.validation"},
		{"unknown field", `{"available": 5, "reserved": 0}`, "request.invalid"},
		{"array", `[5]`, "request.invalid"},
		{"malformed", `{"available": 5`, "request.invalid"},
		{"trailing data", `{"available": 5} {}`, "request.invalid"},
		{"empty", ``, "request.invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.req("PUT", stockPath(401), []byte(tt.give), tok).Want(t, 400, tt.want)
		})
	}
	t.Run("bad sku id", func(t *testing.T) {
		for _, p := range []string{"/api/v1/merchant/skus/abc/stock", "/api/v1/merchant/skus/-1/stock", "/api/v1/merchant/skus/0401/stock"} {
			h.req("PUT", p, map[string]any{"available": 1}, tok).Want(t, 400, "request.invalid")
			h.req("GET", p, nil, tok).Want(t, 400, "request.invalid")
		}
	})
	t.Run("not json", func(t *testing.T) {
		r, err := h.doContentType("PUT", stockPath(401), "text/plain", `{"available": 5}`, tok)
		if err != nil {
			t.Fatal(err)
		}
		r.Want(t, 415, "")
	})
	if after := h.row(401); after != before {
		t.Fatalf("row changed: %+v -> %+v", before, after)
	}
	if n := len(h.events(401)); n != 1 {
		t.Fatalf("%d events, want only Init's", n)
	}
}

func TestConcurrentSet(t *testing.T) {
	h := newHarness(t)
	tok := h.newUser("owner", merchantA)
	h.initSKU(501, merchantA, 0)

	const n = 50
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results = make(map[int64]levelBody, n)
		errsOut []error
	)
	for i := range n {
		want := int64(1000 + i)
		wg.Go(func() {
			r, err := h.do("PUT", stockPath(501), map[string]any{"available": want}, tok)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || r.Status != 200 {
				errsOut = append(errsOut, fmt.Errorf("PUT %d: %v %s", want, err, r))
				return
			}
			var b levelBody
			if err := jsonUnmarshal(r.Body, &b); err != nil {
				errsOut = append(errsOut, err)
				return
			}
			results[want] = b
		})
	}
	wg.Wait()
	for _, err := range errsOut {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	// Every response shows its own write and nothing else changed.
	for want, b := range results {
		if b != (levelBody{SKUID: "501", Available: want}) {
			t.Errorf("response for %d = %+v", want, b)
		}
	}
	final := h.row(501)
	if _, ok := results[final.Available]; !ok {
		t.Fatalf("final available %d was never written", final.Available)
	}
	if final.Version != n+1 || final.Reserved != 0 || final.Sold != 0 {
		t.Fatalf("final row = %+v", final)
	}
	// Exactly one event per Set (plus Init's), versions 1..n+1 without gaps or repeats, the
	// set values are exactly the written ones, and the last event is the final state.
	evs := h.events(501)
	if len(evs) != n+1 {
		t.Fatalf("%d events, want %d", len(evs), n+1)
	}
	var versions, values []int64
	for _, e := range evs[1:] {
		versions = append(versions, e.Version)
		values = append(values, e.Available)
	}
	slices.Sort(versions)
	slices.Sort(values)
	for i := range n {
		if versions[i] != int64(i+2) || values[i] != int64(1000+i) {
			t.Fatalf("event versions %v, values %v", versions, values)
		}
	}
	last := evs[len(evs)-1]
	if last.Version != final.Version || last.Available != final.Available {
		t.Fatalf("last event %+v, final row %+v", last, final)
	}
	var total int
	if err := h.Cluster.Main().QueryRowContext(context.Background(),
		`SELECT COUNT(*) FROM platform_outbox WHERE event_type = ? AND aggregate_id = '501'`, stock.EventLevelChanged).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total-1 != n {
		t.Fatalf("%d Set events in platform_outbox, want %d", total-1, n)
	}
}

func TestInit(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.initSKU(601, merchantA, 10)
	// Again by the same merchant: nothing changes, no event.
	h.initSKU(601, merchantA, 99)
	if r := h.row(601); r.Available != 10 || r.Version != 1 {
		t.Fatalf("row after re-init = %+v", r)
	}
	if n := len(h.events(601)); n != 1 {
		t.Fatalf("%d events, want 1", n)
	}
	if err := h.stock.Init(ctx, 601, merchantB, 5); !errors.Is(err, stock.ErrOwnerConflict) {
		t.Fatalf("Init by another merchant: %v", err)
	}
	for _, tt := range []struct{ sku, merchant, available int64 }{
		{0, merchantA, 1}, {602, 0, 1}, {602, merchantA, -1}, {602, merchantA, stock.MaxAvailable + 1},
	} {
		if err := h.stock.Init(ctx, tt.sku, tt.merchant, tt.available); err == nil {
			t.Errorf("Init(%d, %d, %d) succeeded", tt.sku, tt.merchant, tt.available)
		}
	}
	if _, err := h.stock.Set(ctx, merchantA, 601, -1); !errors.Is(err, stock.ErrInvalidAmount) {
		t.Fatalf("Set -1: %v", err)
	}
	l, err := h.stock.Get(ctx, merchantA, 601)
	if err != nil || l.SKUID != 601 || l.MerchantID != merchantA || l.Available != 10 || l.UpdatedAt.IsZero() {
		t.Fatalf("Get = %+v, %v", l, err)
	}
}

func TestLevels(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.initSKU(701, merchantA, 1)
	h.initSKU(702, merchantA, 2)
	h.initSKU(703, merchantB, 3)

	got, err := h.stock.Levels(ctx, 703, 701, 999, 701)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[701].Available != 1 || got[703].Available != 3 || got[703].MerchantID != merchantB {
		t.Fatalf("Levels = %+v", got)
	}
	if got, err := h.stock.Levels(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Levels() = %+v, %v", got, err)
	}
	many := make([]int64, stock.MaxBatch+1)
	for i := range many {
		many[i] = int64(i + 1)
	}
	if _, err := h.stock.Levels(ctx, many...); !errors.Is(err, stock.ErrTooManySKUs) {
		t.Fatalf("Levels of %d: %v", len(many), err)
	}
}

func TestCheck(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for i := range int64(5) {
		h.initSKU(801+i, merchantA, i)
	}
	rep, err := h.stock.Check(ctx)
	if err != nil || !rep.OK() || rep.Rows != 5 {
		t.Fatalf("Check = %+v, %v", rep, err)
	}
	// The CHECK constraint stops negative counters; drop it to prove Check finds one anyway.
	db := h.Cluster.Main()
	if _, err := db.ExecContext(ctx, `ALTER TABLE stock_levels DROP CONSTRAINT ck_stock_levels_counters`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE stock_levels SET reserved = -2 WHERE sku_id = 803`); err != nil {
		t.Fatal(err)
	}
	rep, err = h.stock.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Rows != 5 || rep.ViolationCount != 1 || len(rep.Violations) != 1 ||
		rep.Violations[0].Level.SKUID != 803 || rep.Violations[0].Level.Reserved != -2 {
		t.Fatalf("Check = %+v", rep)
	}
}

func TestNegativeCountersAreRejectedByTheTable(t *testing.T) {
	h := newHarness(t)
	h.initSKU(901, merchantA, 1)
	_, err := h.Cluster.Main().ExecContext(context.Background(), `UPDATE stock_levels SET available = available - 2 WHERE sku_id = ?`, 901)
	if err == nil {
		t.Fatal("a negative counter was stored")
	}
	if r := h.row(901); r.Available != 1 {
		t.Fatalf("row = %+v", r)
	}
}
