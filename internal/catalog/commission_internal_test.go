package catalog

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"
)

func cat(id, parent int64, rate int) categoryRow {
	r := categoryRow{ID: id, ParentID: sql.NullInt64{Int64: parent, Valid: parent != 0}}
	if rate >= 0 {
		r.CommissionRateBP = sql.NullInt32{Int32: int32(rate), Valid: true}
	}
	return r
}

func TestEffectiveRates(t *testing.T) {
	const none = NoCommissionRate
	rows := []categoryRow{
		cat(1, 0, 800), cat(2, 1, none), cat(3, 2, none), // inherits from parent and grandparent
		cat(4, 1, 0), cat(5, 4, none), // explicit 0 stops the walk
		cat(6, 0, none), cat(7, 6, none), // none anywhere
		cat(8, 99, none),                // parent unknown
		cat(9, 10, none), cat(10, 9, 5), // a cycle (corrupt data) ends
		cat(11, 12, none), cat(12, 11, none),
	}
	got := effectiveRates(rows)
	want := map[int64]int{1: 800, 2: 800, 3: 800, 4: 0, 5: 0, 6: none, 7: none, 8: none, 9: 5, 10: 5, 11: none, 12: none}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("category %d: %d, want %d", id, got[id], w)
		}
	}
}

// TestCategoryRatesReload: the snapshot serves from memory, reloads for an unknown
// category at most once per categoryMissReload, after categoryRatesTTL, and after
// invalidate; a failed load is returned and leaves the next call to retry.
func TestCategoryRatesReload(t *testing.T) {
	now := time.Unix(1000, 0)
	c := &categoryRates{now: func() time.Time { return now }}
	loads := 0
	rows := []categoryRow{cat(1, 0, 100)}
	var fail error
	load := func(context.Context) ([]categoryRow, error) {
		loads++
		return rows, fail
	}
	ctx := context.Background()
	get := func(ids ...int64) map[int64]int {
		t.Helper()
		m, err := c.rates(ctx, ids, load)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := get(1); m[1] != 100 || loads != 1 {
		t.Fatalf("first = %v after %d loads", m, loads)
	}
	rows = []categoryRow{cat(1, 0, 100), cat(2, 1, -1)}
	if m := get(1); loads != 1 || len(m) != 1 {
		t.Fatalf("cached read loaded (%d loads)", loads)
	}
	if _, ok := get(2)[2]; ok || loads != 1 {
		t.Fatalf("a miss within categoryMissReload reloaded (%d loads)", loads)
	}
	now = now.Add(categoryMissReload)
	if m := get(2); m[2] != 100 || loads != 2 {
		t.Fatalf("miss = %v after %d loads", m, loads)
	}
	rows = []categoryRow{cat(1, 0, 200), cat(2, 1, -1)}
	now = now.Add(categoryRatesTTL)
	if m := get(2); m[2] != 200 || loads != 3 {
		t.Fatalf("after TTL = %v after %d loads", m, loads)
	}
	c.invalidate()
	fail = errors.New("db down")
	if _, err := c.rates(ctx, []int64{1}, load); !errors.Is(err, fail) {
		t.Fatalf("failed load = %v", err)
	}
	fail = nil
	if m := get(1); m[1] != 200 || loads != 5 {
		t.Fatalf("after invalidate = %v after %d loads", m, loads)
	}
}
