package order

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/realtime"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// StatusMessage is what the buyer's own channel (/ws/me) gets when one of their orders
// changes status (API.md).
type StatusMessage struct {
	Type    string `json:"type"` // "order.status"
	OrderID string `json:"order_id"`
	Status  Status `json:"status"`
}

// statusPusher is the module's outbox writer with a push: every order event written also
// tells the buyer's channel, after the transaction commits (never for a rollback). The push
// is best effort and off the committing goroutine: the event in the outbox is the record.
type statusPusher struct {
	outbox.Writer
	hub *realtime.Hub
	log *slog.Logger
}

func (p statusPusher) Add(ctx context.Context, evs ...outbox.Event) error {
	if err := p.Writer.Add(ctx, evs...); err != nil {
		return err
	}
	for _, ev := range evs {
		e, ok := ev.Payload.(OrderEvent)
		if !ok || e.BuyerID <= 0 {
			continue
		}
		msg := StatusMessage{Type: "order.status", OrderID: strconv.FormatInt(e.OrderID, 10), Status: e.Status}
		room := realtime.UserRoom(e.BuyerID)
		_ = sqldb.AfterCommit(ctx, func(context.Context) {
			go func() {
				pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				if err := p.hub.Publish(pctx, room, msg); err != nil {
					p.log.Debug("order: status not pushed", "order_id", e.OrderID, "error", err)
				}
			}()
		})
	}
	return nil
}
