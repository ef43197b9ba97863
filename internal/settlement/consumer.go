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

func newLedgerHandler(s *service) kafkax.Handler {
	return kafkax.Handler{Group: LedgerGroup, Topics: []string{order.Topic}, DB: s.db, Handle: s.handle,
		Types: []string{order.EventCompleted, order.EventRefunded}}
}
