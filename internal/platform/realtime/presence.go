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

// presenceEvery is the period of the flush of every count (the worker's interval).
func (h *Hub) presenceEvery() time.Duration { return h.cfg.PresenceTTL / 3 }

// writePresence is the presence worker's run: woken by h.flush it writes the changed
// counts (coalesced: one pipeline per wake-up), and every presenceEvery every count. The
// run cannot tell a tick from a wake-up, so it writes every count when the last full
// flush is a period ago, less a tenth: a tick may find the period not quite over by the
// clock (the timer counts from the run's start, lastFull a moment after). One worker does
// both, one run at a time, so an older snapshot never overwrites a newer one.
func (h *Hub) writePresence(ctx context.Context) error {
	every := h.presenceEvery()
	all := time.Since(h.lastFull) >= every-every/10
	if all {
		h.lastFull = time.Now()
	}
	if err := h.flushPresence(ctx, all); err != nil {
		h.m.presenceErrors.Inc()
		return fmt.Errorf("realtime: presence not written: %w", err)
	}
	return nil
}

func (h *Hub) flushPresence(ctx context.Context, all bool) error {
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
	// Not cut short by Close: it waits for this write to end before it removes the counts,
	// so the write cannot land after the removal.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
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
