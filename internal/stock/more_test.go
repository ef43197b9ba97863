package stock_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/stock"
)

// failingWriter makes every event write fail, as a broken outbox would.
type failingWriter struct{}

var errOutboxDown = errors.New("outbox down")

func (failingWriter) Add(context.Context, ...outbox.Event) error { return errOutboxDown }

// TestChangeRollsBackWithoutItsEvent: a change whose event cannot be written is not made.
func TestChangeRollsBackWithoutItsEvent(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.initSKU(1101, merchantA, 10)
	broken, err := stock.New(stock.Params{DB: h.Cluster, Config: stock.ConfigSection.Default(), Outbox: failingWriter{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := broken.Set(ctx, merchantA, 1101, 3); !errors.Is(err, errOutboxDown) {
		t.Fatalf("Set: %v", err)
	}
	if err := broken.Init(ctx, 1102, merchantA, 3); !errors.Is(err, errOutboxDown) {
		t.Fatalf("Init: %v", err)
	}
	if r := h.row(1101); r.Available != 10 || r.Version != 1 {
		t.Fatalf("row = %+v", r)
	}
	if got, err := h.stock.Levels(ctx, 1102); err != nil || len(got) != 0 {
		t.Fatalf("Levels(1102) = %+v, %v", got, err)
	}
	if n := len(h.events(1101)); n != 1 {
		t.Fatalf("%d events, want Init's only", n)
	}
}

// TestConcurrentInit: many Inits of one SKU create it once with one event; when two
// merchants race, one owns it and the other is refused.
func TestConcurrentInit(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = h.stock.Init(ctx, 1201, merchantA, int64(i)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Init %d: %v", i, err)
		}
	}
	if n := len(h.events(1201)); n != 1 {
		t.Fatalf("%d events, want 1", n)
	}

	owners := []int64{merchantA, merchantB}
	for i := range n {
		wg.Go(func() { errs[i] = h.stock.Init(ctx, 1202, owners[i%2], 5) })
	}
	wg.Wait()
	owner := h.row(1202).MerchantID
	for i, err := range errs {
		want := error(nil)
		if owners[i%2] != owner {
			want = stock.ErrOwnerConflict
		}
		if !errors.Is(err, want) && err != want {
			t.Fatalf("Init %d by %d (owner %d): %v", i, owners[i%2], owner, err)
		}
	}
	if n := len(h.events(1202)); n != 1 {
		t.Fatalf("%d events, want 1", n)
	}
}

// FuzzSetStock feeds arbitrary bodies to PUT .../stock through the real server: the answer
// is 200 with the stored value, or a 4xx problem with a code and no change — never a 5xx.
func FuzzSetStock(f *testing.F) {
	for _, s := range []string{`{"available": 5}`, `{"available": 0}`, `{"available": -1}`, `{"available": 1e9}`,
		`{"available": "7"}`, `{"available": 18446744073709551616}`, `{"available": 1, "sold": 2}`, `{}`, `null`,
		`{"available": 5.0}`, `{"AVAILABLE": 3}`, `{"available": 1}{"available": 2}`, "\xff", ``} {
		f.Add([]byte(s))
	}
	h := newHarness(f)
	tok := h.newUser("fuzz", merchantA)
	h.initSKU(1301, merchantA, 1)
	f.Fuzz(func(t *testing.T, body []byte) {
		before := rowOf(t, h, 1301)
		r, err := h.do("PUT", stockPath(1301), body, tok)
		if err != nil {
			t.Fatal(err)
		}
		after := rowOf(t, h, 1301)
		switch {
		case r.Status == 200:
			var b levelBody
			r.Decode(t, &b)
			if b.Available != after.Available || after.Version != before.Version+1 {
				t.Fatalf("200 %+v, row %+v", b, after)
			}
		case r.Status >= 400 && r.Status < 500 && r.Code() != "":
			if after != before {
				t.Fatalf("%s changed the row: %+v -> %+v", r, before, after)
			}
		default:
			t.Fatalf("body %q: %s", body, r)
		}
	})
}
