package live

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// viewerPusher sends {"type":"viewers"} to every live room every interval. Each replica
// runs one; per room and tick a Redis SET NX (expiring a little before the next tick)
// elects the replica that pushes, so a room gets one count per interval however many
// replicas there are, and another replica takes over at once when one stops.
type viewerPusher struct {
	svc      *service
	rdb      redis.UniversalClient
	interval time.Duration
	log      *slog.Logger

	stop chan struct{}
	done sync.WaitGroup
}

// maxPushRooms bounds one tick's work.
const maxPushRooms = 1000

func (p *viewerPusher) start() {
	p.stop = make(chan struct{})
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(p.interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), p.interval)
				p.tick(ctx)
				cancel()
			}
		}
	}()
}

func (p *viewerPusher) close() {
	close(p.stop)
	p.done.Wait()
}

func (p *viewerPusher) tick(ctx context.Context) {
	rows, err := p.svc.st.list(ctx, qRoomsStatus, StatusLive, beforeID(0), maxPushRooms)
	if err != nil {
		p.log.WarnContext(ctx, "live viewers: list live rooms", "err", err)
		return
	}
	ttl := p.interval * 9 / 10
	for _, r := range rows {
		if ctx.Err() != nil {
			return
		}
		won, err := p.rdb.SetNX(ctx, "mall:live:viewers:"+strconv.FormatInt(r.ID, 10), 1, ttl).Result()
		if err != nil || !won {
			continue // another replica pushes this tick (or Redis is down: the hub is too)
		}
		n, err := p.svc.Viewers(ctx, r.ID)
		if err != nil {
			continue
		}
		msg := ViewersMessage{Type: "viewers", RoomID: r.ID, Count: n, At: p.svc.clock()}
		if err := p.svc.hub.Publish(ctx, HubRoom(r.ID), msg); err == nil {
			p.svc.m.viewerPushes.Inc()
		}
	}
}
