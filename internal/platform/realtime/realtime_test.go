package realtime_test

import (
	"context"
	"testing"

	"github.com/coder/websocket"
)

type numbered struct {
	Type string `json:"type"`
	N    int    `json:"n"`
}

func TestSingleReplicaDelivery(t *testing.T) {
	rdb, prefix := redisClient(t)
	r := newReplica(t, testConfig(prefix), rdb, nil)
	a := dial(t, r, "live:1", nil)
	b := dial(t, r, "live:1", nil)
	other := dial(t, r, "live:2", nil)
	waitViewers(t, r.Hub, "live:1", 2)
	waitViewers(t, r.Hub, "live:2", 1)

	for i := range 10 {
		if err := r.Hub.Publish(context.Background(), "live:1", numbered{Type: "n", N: i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Hub.Publish(context.Background(), "live:2", numbered{Type: "other", N: 99}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*websocket.Conn{a, b} {
		for i := range 10 {
			var m numbered
			readJSON(t, c, &m)
			if m.N != i {
				t.Fatalf("message %d: got %+v", i, m)
			}
		}
	}
	var m numbered
	readJSON(t, other, &m)
	if m.N != 99 {
		t.Fatalf("room live:2 got %+v", m)
	}
}
