package settlement

import (
	"context"

	"github.com/mallhq/mall/internal/platform/kafkax"
)

// Handle runs the ledger consumer's Handle on ev in a transaction of its own, as the
// consumer does (without the inbox: tests of the fact keys call it directly).
func Handle(ctx context.Context, s Service, ev kafkax.Envelope) error {
	sv := s.(*service)
	return sv.db.WithinTx(ctx, func(ctx context.Context) error { return sv.handle(ctx, ev) })
}
