package log_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/log"
)

func TestRecordsCarryRequestAndTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	l := log.NewWriter(&buf, config.Log{Level: "info", Format: "json"}).With("module", "order")
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(log.WithRequestID(context.Background(), "req-1"),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	l.InfoContext(ctx, "hello")
	l.DebugContext(ctx, "hidden at info level")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON record: %q", buf.String())
	}
	if rec["request_id"] != "req-1" || rec["trace_id"] != tid.String() || rec["module"] != "order" || rec["msg"] != "hello" {
		t.Fatalf("record: %v", rec)
	}
}
