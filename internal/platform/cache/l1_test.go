package cache

import (
	"strconv"
	"testing"
)

func TestL1StaysWithinItsSize(t *testing.T) {
	tests := []struct {
		give       int
		wantShards int
	}{
		{give: 10, wantShards: 1},
		{give: 1000, wantShards: 8},
		{give: 20_000, wantShards: 64},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.give), func(t *testing.T) {
			l := newL1[int](tt.give)
			if len(l.shards) != tt.wantShards {
				t.Fatalf("%d shards, want %d", len(l.shards), tt.wantShards)
			}
			n := now()
			for i := range 3 * tt.give {
				k := strconv.Itoa(i)
				_, _, gen := l.get(k, n)
				l.set(k, l1Entry[int]{val: i, expires: n + 1e12}, gen, n)
			}
			limit := len(l.shards) * l.capacity
			if got := l.len(); got > limit || got < tt.give/2 {
				t.Fatalf("%d entries after %d inserts into size %d (limit %d)", got, 3*tt.give, tt.give, limit)
			}
		})
	}
}

func TestL1EvictsExpiredFirst(t *testing.T) {
	l := newL1[int](2)
	n := now()
	_, _, gen := l.get("old", n)
	l.set("old", l1Entry[int]{expires: n - 1}, gen, n)
	l.set("live", l1Entry[int]{val: 1, expires: n + 1e12}, gen, n)
	l.set("new", l1Entry[int]{val: 2, expires: n + 1e12}, gen, n)
	if _, ok, _ := l.get("live", n); !ok {
		t.Fatal("a live entry was evicted while an expired one was there")
	}
	if _, ok, _ := l.get("old", n); ok {
		t.Fatal("expired entry served")
	}
}

func TestL1RefusesFillsOvertakenByInvalidation(t *testing.T) {
	l := newL1[int](100)
	n := now()
	_, _, gen := l.get("k", n)
	l.drop([]string{"k"})
	if l.set("k", l1Entry[int]{val: 1, expires: n + 1e12}, gen, n) {
		t.Fatal("fill accepted after the key was dropped")
	}
	_, _, gen = l.get("k", n)
	l.clear()
	if l.set("k", l1Entry[int]{val: 1, expires: n + 1e12}, gen, n) {
		t.Fatal("fill accepted after a clear")
	}
	_, _, gen = l.get("k", n)
	if !l.set("k", l1Entry[int]{val: 1, expires: n + 1e12}, gen, n) {
		t.Fatal("fill refused without an invalidation")
	}
	if e, ok, _ := l.get("k", n); !ok || e.val != 1 {
		t.Fatal("filled entry not served")
	}
}
