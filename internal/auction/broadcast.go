package auction

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mallhq/mall/internal/platform/redisx"
)

// Broadcaster delivers a message to every watcher of a room on every replica, in the
// order of the calls (the realtime hub).
type Broadcaster interface {
	Publish(ctx context.Context, room string, msg any) error
}

// outbidMsg tells a bidder, on their own channel (/ws/me), that their leading bid was
// overtaken (API.md).
type outbidMsg struct {
	Type         string `json:"type"` // "auction.outbid"
	AuctionID    string `json:"auction_id"`
	CurrentPrice int64  `json:"current_price"`
}

// Room is the realtime room of a lot.
func Room(id int64) string { return "auction:" + strconv.FormatInt(id, 10) }

// Messages to watchers (API.md). Version is the lot's version after the change; a
// watcher never receives a lower version after a higher one.
type bidMsg struct {
	Type     string    `json:"type"` // "bid"
	BidID    string    `json:"bid_id"`
	BidderID string    `json:"bidder_id"`
	Amount   int64     `json:"amount"`
	BidCount int64     `json:"bid_count"`
	EndsAt   time.Time `json:"ends_at"`
	Version  int64     `json:"version"`
}

type extendedMsg struct {
	Type    string    `json:"type"` // "extended"
	EndsAt  time.Time `json:"ends_at"`
	Version int64     `json:"version"`
}

type endedMsg struct {
	Type       string `json:"type"` // "ended"
	WinnerID   string `json:"winner_id,omitempty"`
	FinalPrice int64  `json:"final_price"`
	ReserveMet bool   `json:"reserve_met"`
	BidCount   int64  `json:"bid_count"`
	Version    int64  `json:"version"`
}

type stateMsg struct {
	Type         string    `json:"type"` // "state": the welcome
	ID           string    `json:"id"`
	Status       Status    `json:"status"`
	CurrentPrice int64     `json:"current_price"`
	BidCount     int64     `json:"bid_count"`
	LeaderID     string    `json:"leader_id,omitempty"`
	EndsAt       time.Time `json:"ends_at"`
	ReserveMet   bool      `json:"reserve_met"`
	Version      int64     `json:"version"`
}

func stateOf(l Lot) stateMsg {
	m := stateMsg{Type: "state", ID: strconv.FormatInt(l.ID, 10), Status: l.Status, CurrentPrice: l.CurrentPrice,
		BidCount: l.BidCount, EndsAt: l.EndsAt, ReserveMet: l.ReserveMet(), Version: l.Version}
	if l.LeaderID != 0 {
		m.LeaderID = strconv.FormatInt(l.LeaderID, 10)
	}
	return m
}

// orderedPublisher publishes a change's messages only when its version is newer than the
// last one published for the lot, holding a short Redis lock per lot across the check and
// the publish: two replicas that committed versions 6 and 7 publish 6 then 7, or 7 alone
// (6 is then dropped as stale) — never 7 then 6. Watchers may miss an intermediate change
// but never see the price go down.
type orderedPublisher struct {
	rdb redis.UniversalClient
	hub Broadcaster
}

var acquireScript = redis.NewScript(`
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if last >= tonumber(ARGV[1]) then return 0 end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
  return 1
end
return -1
`)

// lockTTL bounds how long a crashed publisher blocks the lot's messages.
const lockTTL = 2 * time.Second

// publish sends msgs for the lot at version; false when a newer version went out first.
func (p *orderedPublisher) publish(ctx context.Context, lotID, version int64, msgs ...any) (bool, error) {
	id := strconv.FormatInt(lotID, 10)
	keys := []string{"auction:pub:{" + id + "}:last", "auction:pub:{" + id + "}:lock"}
	var b [8]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	deadline := time.Now().Add(lockTTL)
	for {
		n, err := acquireScript.Run(ctx, p.rdb, keys, version, token, lockTTL.Milliseconds(),
			(24 * time.Hour).Milliseconds()).Int()
		if err != nil {
			return false, err
		}
		if n == 0 {
			return false, nil
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			return false, context.DeadlineExceeded
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	defer redisx.ReleaseLease(context.WithoutCancel(ctx), p.rdb, keys[1], token) //nolint:errcheck // the lock expires anyway
	room := Room(lotID)
	for _, m := range msgs {
		if err := p.hub.Publish(ctx, room, m); err != nil {
			return true, err
		}
	}
	return true, nil
}

// discard is the Broadcaster when no hub is wired (tests of the module alone).
type discard struct{}

func (discard) Publish(context.Context, string, any) error { return nil }
