package realtime

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Presence: each replica keeps, per room it has connections in, one field of the Redis
// hash <prefix>rt:presence:<room>: field = node, value = "<count>:<expiry, Unix ms>". A
// replica rewrites its fields when counts change and every PresenceTTL/3; Viewers sums the
// unexpired fields, so a crashed replica's viewers vanish after PresenceTTL. (Redis 7.0
// has no per-field TTL, hence the expiry inside the value.)

var errPresence = errors.New("realtime: malformed presence value")

func (h *Hub) presenceKey(room string) string { return h.cfg.Prefix + "rt:presence:" + room }

func encodePresence(n int, exp time.Time) string {
	return strconv.Itoa(n) + ":" + strconv.FormatInt(exp.UnixMilli(), 10)
}

func decodePresence(s string) (int64, time.Time, error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok || len(a) > 12 || len(b) > 19 {
		return 0, time.Time{}, errPresence
	}
	n, err := strconv.ParseInt(a, 10, 64)
	if err != nil || n < 0 {
		return 0, time.Time{}, errPresence
	}
	ms, err := strconv.ParseInt(b, 10, 64)
	if err != nil || ms < 0 {
		return 0, time.Time{}, errPresence
	}
	return n, time.UnixMilli(ms), nil
}

// Viewers is the number of connections in room across all replicas (presence). This
// replica's own count is always current; others' are as of their last flush (they flush
// on every change, within milliseconds).
func (h *Hub) Viewers(ctx context.Context, room string) (int64, error) {
	if err := checkRoomName(room); err != nil {
		return 0, err
	}
	key := h.presenceKey(room)
	fields, err := h.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return 0, fmt.Errorf("realtime: viewers of %s: %w", room, err)
	}
	now := time.Now()
	total := int64(h.localCount(room))
	var expired []string
	for node, v := range fields {
		if node == h.node {
			continue
		}
		n, exp, err := decodePresence(v)
		if err != nil || exp.Before(now) {
			expired = append(expired, node)
			continue
		}
		total += n
	}
	if len(expired) > 0 {
		// Best effort: the value is ignored either way.
		_ = h.rdb.HDel(ctx, key, expired...).Err()
	}
	return total, nil
}

// markDirty schedules room's count for the next flush. Caller holds h.mu.
func (h *Hub) markDirty(room string) {
	h.dirty[room] = struct{}{}
	select {
	case h.flush <- struct{}{}:
	default:
	}
}

// presenceLoop writes changed counts as they change (coalesced: one pipeline per wake-up)
// and every count each PresenceTTL/3.
func (h *Hub) presenceLoop() {
	defer h.stopped.Done()
	t := time.NewTicker(h.cfg.PresenceTTL / 3)
	defer t.Stop()
	for {
		all := false
		select {
		case <-h.stop:
			return
		case <-h.flush:
		case <-t.C:
			all = true
		}
		if err := h.flushPresence(all); err != nil {
			h.m.presenceErrors.Inc()
			h.log.Warn("realtime: presence not written", "error", err.Error())
		}
	}
}

func (h *Hub) flushPresence(all bool) error {
	type count struct {
		room string
		n    int
	}
	h.mu.Lock()
	var counts []count
	if all {
		for name, r := range h.rooms {
			counts = append(counts, count{name, len(r.conns)})
		}
		for name := range h.dirty {
			if h.rooms[name] == nil {
				counts = append(counts, count{name, 0})
			}
		}
	} else {
		for name := range h.dirty {
			n := 0
			if r := h.rooms[name]; r != nil {
				n = len(r.conns)
			}
			counts = append(counts, count{name, n})
		}
	}
	clear(h.dirty)
	h.mu.Unlock()
	if len(counts) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	exp := time.Now().Add(h.cfg.PresenceTTL)
	pipe := h.rdb.Pipeline()
	for _, c := range counts {
		key := h.presenceKey(c.room)
		if c.n == 0 {
			pipe.HDel(ctx, key, h.node)
			continue
		}
		pipe.HSet(ctx, key, h.node, encodePresence(c.n, exp))
		// The whole hash goes when no replica has refreshed it for a while.
		pipe.PExpire(ctx, key, 2*h.cfg.PresenceTTL)
	}
	_, err := pipe.Exec(ctx)
	if err != nil {
		// Retry these rooms on the next wake-up.
		h.mu.Lock()
		for _, c := range counts {
			h.dirty[c.room] = struct{}{}
		}
		h.mu.Unlock()
	}
	return err
}
