// Package kafkax is Mall's Kafka layer on franz-go: the event envelope every module
// publishes, topic naming, the broker connection (an in-process kfake cluster in development
// and tests), the producer the outbox relay uses, and the consumer runner that applies each
// event once through the inbox table.
package kafkax

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Record headers carried next to the envelope, so consumers and tools can route on the
// event without decoding the value.
const (
	HeaderEventType = "event-type"
	HeaderEventID   = "event-id"
)

// ErrBadEnvelope means a record value is not a valid envelope; it can never be applied.
var ErrBadEnvelope = errors.New("kafkax: bad envelope")

// Envelope is the JSON value of every record Mall publishes. The record key is AggregateID,
// so one aggregate's events share a partition and keep their order.
type Envelope struct {
	// ID is a UUIDv7, the deduplication key of the inbox.
	ID          string `json:"id"`
	Type        string `json:"type"`
	AggregateID string `json:"aggregate_id"`
	// OccurredAt is UTC and encodes as RFC 3339.
	OccurredAt time.Time       `json:"occurred_at"`
	Payload    json.RawMessage `json:"payload"`
}

// NewEnvelope builds an envelope with a fresh UUIDv7 and the current time (UTC, truncated
// to microseconds so it round-trips through DATETIME(6)). payload is marshalled to JSON.
func NewEnvelope(eventType, aggregateID string, payload any) (Envelope, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Envelope{}, fmt.Errorf("kafkax: event id: %w", err)
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		return Envelope{}, fmt.Errorf("kafkax: payload of %s: %w", eventType, err)
	}
	return Envelope{
		ID:          id.String(),
		Type:        eventType,
		AggregateID: aggregateID,
		OccurredAt:  time.Now().UTC().Truncate(time.Microsecond),
		Payload:     raw,
	}, nil
}

// DecodeEnvelope parses a record value. Errors wrap ErrBadEnvelope.
func DecodeEnvelope(value []byte) (Envelope, error) {
	var ev Envelope
	if err := json.Unmarshal(value, &ev); err != nil {
		return Envelope{}, fmt.Errorf("%w: %w", ErrBadEnvelope, err)
	}
	switch {
	case ev.ID == "":
		return Envelope{}, fmt.Errorf("%w: no id", ErrBadEnvelope)
	case ev.Type == "":
		return Envelope{}, fmt.Errorf("%w: no type", ErrBadEnvelope)
	}
	return ev, nil
}

// Topic names a module's topic: mall.<module>.v1.
func Topic(module string) string { return "mall." + module + ".v1" }

// NewRecord builds the record for an encoded envelope: keyed by aggregate ID, with the
// event type and ID in headers.
func NewRecord(topic, aggregateID, eventType, eventID string, envelope []byte) *kgo.Record {
	return &kgo.Record{
		Topic: topic,
		Key:   []byte(aggregateID),
		Value: envelope,
		Headers: []kgo.RecordHeader{
			{Key: HeaderEventType, Value: []byte(eventType)},
			{Key: HeaderEventID, Value: []byte(eventID)},
		},
	}
}

// Header returns the value of a record header, or "".
func Header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
