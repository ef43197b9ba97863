package idgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mallhq/mall/internal/platform/redisx"
	"github.com/mallhq/mall/internal/platform/worker"
)

// ErrNoNode means every node number is leased by another replica.
var ErrNoNode = errors.New("idgen: every node number 0..255 is leased")

var errLeaseLost = errors.New("idgen: node lease no longer held")

// Lease holds a node number leased in Redis for as long as the process lives.
type Lease struct {
	Node    int
	rdb     redis.UniversalClient
	key     string
	token   string
	workers *worker.Runner // renews the lease until Release
}

const leaseTTL = 60 * time.Second

// AcquireLease takes the first free node number and keeps it refreshed until Release.
func AcquireLease(ctx context.Context, rdb redis.UniversalClient) (*Lease, error) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	for n := 0; n <= MaxNode; n++ {
		key := "mall:idgen:node:" + strconv.Itoa(n)
		ok, err := rdb.SetNX(ctx, key, token, leaseTTL).Result()
		if err != nil {
			return nil, err
		}
		if ok {
			l := &Lease{Node: n, rdb: rdb, key: key, token: token}
			if err := l.start(ctx); err != nil {
				return nil, errors.Join(err, redisx.ReleaseLease(ctx, rdb, key, token))
			}
			return l, nil
		}
	}
	return nil, ErrNoNode
}

// start runs the renewal every leaseTTL/3 (no jitter: one renewal per replica, nothing
// to spread).
func (l *Lease) start(ctx context.Context) error {
	r, err := worker.New(worker.Params{Workers: []worker.Spec{{
		Name:     "idgen.lease",
		Interval: leaseTTL / 3,
		Jitter:   -1,
		Timeout:  5 * time.Second,
		Run:      l.renew,
	}}})
	if err != nil {
		return err
	}
	l.workers = r
	return r.Start(ctx)
}

func (l *Lease) renew(ctx context.Context) error {
	ok, err := redisx.RenewLease(ctx, l.rdb, l.key, l.token, leaseTTL)
	if err != nil {
		return fmt.Errorf("idgen: renew node %d: %w", l.Node, err)
	}
	if !ok {
		return fmt.Errorf("%w: node %d", errLeaseLost, l.Node)
	}
	return nil
}

// Release gives the node number back.
func (l *Lease) Release(ctx context.Context) error {
	// Stopped first, so no renewal runs after the key is gone (one would be a no-op anyway:
	// the renewal compares the token).
	stopErr := l.workers.Stop(ctx)
	return errors.Join(stopErr, redisx.ReleaseLease(ctx, l.rdb, l.key, l.token))
}
