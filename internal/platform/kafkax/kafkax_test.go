package kafkax_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/platform/kafkax/kafkaxtest"
)

func TestTopic(t *testing.T) {
	if got := kafkax.Topic("order"); got != "mall.order.v1" {
		t.Fatalf("Topic = %q", got)
	}
}

func TestEnvelopeWireFormat(t *testing.T) {
	ev, err := kafkax.NewEnvelope("order.placed", "42", map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	id, err := uuid.Parse(ev.ID)
	if err != nil || id.Version() != 7 {
		t.Fatalf("id %q is not a UUIDv7 (%v)", ev.ID, err)
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var wire map[string]json.RawMessage
	if err := json.Unmarshal(raw, &wire); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "type", "aggregate_id", "occurred_at", "payload"} {
		if _, ok := wire[k]; !ok {
			t.Errorf("wire format lacks %q: %s", k, raw)
		}
	}
	if len(wire) != 5 {
		t.Errorf("wire format has extra keys: %s", raw)
	}
	var at string
	_ = json.Unmarshal(wire["occurred_at"], &at)
	if ts, err := time.Parse(time.RFC3339, at); err != nil || !strings.HasSuffix(at, "Z") || ts.Location() != time.UTC {
		t.Errorf("occurred_at %q is not RFC 3339 UTC (%v)", at, err)
	}
	if string(wire["payload"]) != `{"n":1}` {
		t.Errorf("payload = %s", wire["payload"])
	}
	back, err := kafkax.DecodeEnvelope(raw)
	if err != nil || back.ID != ev.ID || !back.OccurredAt.Equal(ev.OccurredAt) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}

func TestDecodeEnvelopeRejects(t *testing.T) {
	tests := []struct {
		name string
		give string
	}{
		{"not json", "garbage"},
		{"no id", `{"type":"x","aggregate_id":"1","payload":{}}`},
		{"no type", `{"id":"0190","aggregate_id":"1","payload":{}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := kafkax.DecodeEnvelope([]byte(tt.give)); !errors.Is(err, kafkax.ErrBadEnvelope) {
				t.Fatalf("err = %v, want ErrBadEnvelope", err)
			}
		})
	}
}

func TestBrokerPingAndEnsureTopics(t *testing.T) {
	b := kafkaxtest.Broker(t, 4)
	ctx := ctxTimeout(t, 10*time.Second)
	if err := b.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureTopics(ctx, "mall.a.v1", "mall.b.v1"); err != nil {
		t.Fatal(err)
	}
	// A second call finds them and is not an error; nor is a topic named twice (handlers
	// sharing a topic).
	if err := b.EnsureTopics(ctx, "mall.a.v1"); err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureTopics(ctx, "mall.c.v1", "mall.a.v1", "mall.c.v1"); err != nil {
		t.Fatal(err)
	}
	if parts := b.Fake().PartitionInfos("mall.b.v1"); len(parts) != 4 {
		t.Fatalf("mall.b.v1 has %d partitions, want 4", len(parts))
	}
}
