package outbox

import (
	"context"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mallhq/mall/internal/platform/kafkax"
)

// publish produces rows in ID order and waits for every result; results[i] is nil when
// rows[i] is in Kafka. Fresh rows go asynchronously, so the client batches them and keeps
// their order per partition. A row that failed before goes alone, after everything before
// it settled: a poison row then cannot fail innocent rows batched with it again, and its
// failure is known before its aggregate's next row would be sent.
//
// One gap remains: when a fresh row fails for good at the broker (a non-retriable error;
// retriable ones are retried inside the client) a later row of its aggregate already in a
// later produce request can still succeed and overtake it. Oversized rows, the usual
// poison, are caught before producing, so that gap needs a broker rejecting a valid-sized
// record.
func (r *Relay) publish(rows []outboxRow) []error {
	results := make([]error, len(rows))
	failed := map[string]bool{} // aggregates with a failed row in this batch
	var wg sync.WaitGroup
	for i := range rows {
		row := &rows[i]
		if failed[row.AggregateID] {
			results[i] = errHeldBack
			continue
		}
		if size := len(row.Envelope) + len(row.AggregateID) + len(row.EventType) + len(row.EventID); size > r.o.maxRecordBytes {
			results[i] = fmt.Errorf("%w: %d bytes", ErrTooLarge, size)
			failed[row.AggregateID] = true
			continue
		}
		rec := kafkax.NewRecord(row.Topic, row.AggregateID, row.EventType, row.EventID, row.Envelope)
		if row.Attempts > 0 {
			wg.Wait()
			if results[i] = r.producer.ProduceSync(context.Background(), rec).FirstErr(); results[i] != nil {
				failed[row.AggregateID] = true
			}
			continue
		}
		wg.Add(1)
		r.producer.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
			results[i] = err
			wg.Done()
		})
	}
	wg.Wait()
	return results
}
