// Package kafkaxtest starts in-process Kafka brokers (kfake) for tests.
package kafkaxtest

import (
	"log/slog"
	"os"
	"testing"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/kafkax"
)

// Logger discards logs unless MALL_TEST_LOG is set: background goroutines may log after a
// test ends, which t.Log does not allow.
func Logger() *slog.Logger {
	if os.Getenv("MALL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// Broker starts an embedded broker with the given default partition count, closed when the
// test ends.
func Broker(t testing.TB, partitions int) *kafkax.Broker {
	t.Helper()
	b, err := kafkax.NewBroker(config.Kafka{Embedded: true, ClientID: "test", Partitions: partitions}, Logger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}
