package flashsale_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestFlashSaleAtScale is the first criterion as written: 5,000 concurrent attempts
// from 1,000 buyers (5 keys each) on a sale of 100 units with a limit of 1, ten rounds (a
// new sale each): exactly 100 orders, no buyer with two, every ticket final within 30 s, no
// 5xx, and the stock invariants after every round.
func TestFlashSaleAtScale(t *testing.T) {
	const (
		buyers, keys = 1000, 5
		units        = 100
		rounds       = 10
	)
	a := newApp(t)
	_, _, owner := a.Merchant(a.admin)

	bs := make([]buyer, buyers)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range bs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			_, tk := a.NewUser("scale")
			bs[i] = buyer{token: tk.AccessToken, address: a.Address(tk.AccessToken)}
		})
	}
	wg.Wait()

	sem = make(chan struct{}, 200)
	for round := range rounds {
		sku := a.product(owner, 1999, units)
		s := a.sale(owner, sku, units, 1, time.Now().Add(-time.Second), time.Now().Add(time.Hour))
		var (
			mu       sync.Mutex
			accepted = map[string]int{} // ticket -> buyer
			outcomes = map[string]int{}
		)
		start := time.Now()
		for i := range buyers * keys {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				b := (i*7 + round) % buyers // each buyer's keys spread over the burst
				r := a.attempt(bs[b], s.ID, fmt.Sprintf("s%d-%d", round, i))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case r.Status == http.StatusAccepted:
					var tk ticketBody
					r.Decode(t, &tk)
					accepted[tk.ID] = b
				case r.Status >= 500:
					t.Errorf("round %d attempt %d: %s", round, i, r)
				}
				outcomes[fmt.Sprint(r.Status, " ", r.Code())]++
			})
		}
		wg.Wait()
		burst := time.Since(start)
		if len(accepted) != units {
			t.Fatalf("round %d: %d attempts accepted for %d units (%v)", round, len(accepted), units, outcomes)
		}
		a.eventually("every ticket final", 30*time.Second, func() bool {
			return a.count(`SELECT COUNT(*) FROM flashsale_tickets WHERE sale_id = ?`, s.ID) == units
		})
		final := time.Since(start)
		if n := a.count(`SELECT COUNT(*) FROM flashsale_tickets WHERE sale_id = ? AND status = 'ordered'`, s.ID); n != units {
			t.Fatalf("round %d: %d of %d tickets ordered", round, n, units)
		}
		if n := a.count(`SELECT COUNT(*) FROM (SELECT buyer_id FROM flashsale_tickets WHERE sale_id = ? AND status = 'ordered'
			GROUP BY buyer_id HAVING COUNT(*) > 1) x`, s.ID); n != 0 {
			t.Fatalf("round %d: %d buyers with two orders", round, n)
		}
		perBuyer := map[int]int{}
		for _, b := range accepted {
			if perBuyer[b]++; perBuyer[b] > 1 {
				t.Fatalf("round %d: buyer %d has two accepted tickets", round, b)
			}
		}
		if n := a.flashOrders(s.ID); n != units {
			t.Fatalf("round %d: %d flash orders, want %d", round, n, units)
		}
		checkStock(t, a)
		t.Logf("round %d: %d attempts in %s, all %d tickets final after %s; %v", round, buyers*keys,
			burst.Round(time.Millisecond), units, final.Round(time.Millisecond), outcomes)
	}
}
