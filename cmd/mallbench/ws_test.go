package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/platform/config"
)

// TestWSRows runs both WebSocket rows, scaled down, against an in-process ws server on the
// test Redis.
func TestWSRows(t *testing.T) {
	addr := os.Getenv("MALL_TEST_REDIS_ADDR")
	if addr == "" {
		t.Fatal("MALL_TEST_REDIS_ADDR is not set: run `make test`, or `scripts/services.sh up && eval \"$(scripts/services.sh env)\"`")
	}
	srv, stop, err := startWSServer("127.0.0.1:0", config.Redis{Addr: addr}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	env := &Env{WSURL: "http://" + srv.Addr().String(), WSRedis: addr, Client: &http.Client{Timeout: 30 * time.Second}}
	ctx := context.Background()
	if err := waitReady(ctx, env.Client, env.WSURL+"/readyz", 30*time.Second); err != nil {
		t.Fatal(err)
	}

	res, goal, err := wsIdleMemory(50)(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 50 || !strings.Contains(goal, "KiB/conn") {
		t.Fatalf("idle row: %+v %q", res, goal)
	}

	res, goal, err = wsBroadcast(50, 10, 20*time.Millisecond)(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 10 || res.Errors != 0 || res.P99 <= 0 || res.P50 > res.P99 {
		t.Fatalf("broadcast row: %+v (%s)", res, goal)
	}
	t.Logf("broadcast to 50: p50 %v p99 %v; %s", res.P50, res.P99, goal)
}

func TestParseSeq(t *testing.T) {
	tests := []struct {
		give string
		want int
	}{
		{`{"seq":12,"text":"x"}`, 12},
		{`{"seq":0}`, 0},
		{`{"text":"x"}`, -1},
		{`{"seq":"1"}`, -1},
		{`{"seq":12345678901}`, -1},
	}
	for _, tt := range tests {
		if got := parseSeq([]byte(tt.give)); got != tt.want {
			t.Errorf("parseSeq(%s) = %d, want %d", tt.give, got, tt.want)
		}
	}
}
