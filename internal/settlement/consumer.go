package settlement

import (
	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/platform/kafkax"
)

// LedgerGroup posts order facts to the ledger. It has an inbox: a posting is a write
// that must happen once per event, in the transaction that records the event; a second
// event carrying the same fact (a re-publication under a new event ID) is absorbed by the
// fact's unique key.
const LedgerGroup = "mall.settlement.ledger"

// ledgerBatch bounds the events one ledger transaction posts: completions come in bursts
// (the auto-complete worker, a busy evening's receipts), and one commit per event would
// cap the ledger at the database's commit rate.
const ledgerBatch = 200

func newLedgerHandler(s *service) kafkax.Handler {
	return kafkax.Handler{Group: LedgerGroup, Topics: []string{order.Topic}, DB: s.db, Handle: s.handle,
		Types: []string{order.EventCompleted, order.EventRefunded}, Batch: ledgerBatch,
		// A transaction's postings are written together at its end, balance counters in
		// merchant order.
		Begin: withPending, Flush: s.flushPending}
}
