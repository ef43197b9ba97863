package live

import (
	"context"
	"fmt"

	"github.com/mallhq/mall/internal/platform/worker"
)

// maxPushRooms bounds one push's work.
const maxPushRooms = 1000

// viewerPusher sends {"type":"viewers"} to every live room every ViewersInterval, once per
// cluster: the count is the whole cluster's (presence in Redis) and the hub's Publish
// reaches the room's viewers on every replica (Redis pub/sub), so the worker is
// leader-only and one replica pushes for all. When it stops, another takes over within
// the lease's TTL.
func viewerPusher(svc Service) worker.Spec {
	s, ok := svc.(*service)
	if !ok || s.hub == nil || s.cfg.ViewersInterval <= 0 {
		return worker.Spec{}
	}
	return worker.Spec{Name: "live.viewers", Interval: s.cfg.ViewersInterval, Timeout: s.cfg.ViewersInterval,
		Leader: true, Run: s.pushViewers}
}

func (s *service) pushViewers(ctx context.Context) error {
	rows, err := s.st.list(ctx, qRoomsStatus, StatusLive, beforeID(0), maxPushRooms)
	if err != nil {
		return fmt.Errorf("live viewers: list live rooms: %w", err)
	}
	for _, r := range rows {
		if ctx.Err() != nil {
			return nil
		}
		n, err := s.Viewers(ctx, r.ID)
		if err != nil {
			continue // Redis is down: the hub is too
		}
		msg := ViewersMessage{Type: "viewers", RoomID: r.ID, Count: n, At: s.clock()}
		if err := s.hub.Publish(ctx, HubRoom(r.ID), msg); err == nil {
			s.m.viewerPushes.Inc()
		}
	}
	return nil
}
