package idgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNoNode means every node number is leased by another replica.
var ErrNoNode = errors.New("idgen: every node number 0..255 is leased")

// Lease holds a node number leased in Redis for as long as the process lives.
type Lease struct {
	Node  int
	rdb   redis.UniversalClient
	key   string
	token string
	stop  chan struct{}
	done  chan struct{}
}

var refreshScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
return 0`)

var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0`)

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
			l := &Lease{Node: n, rdb: rdb, key: key, token: token, stop: make(chan struct{}), done: make(chan struct{})}
			go l.refresh()
			return l, nil
		}
	}
	return nil, ErrNoNode
}

func (l *Lease) refresh() {
	defer close(l.done)
	t := time.NewTicker(leaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = refreshScript.Run(ctx, l.rdb, []string{l.key}, l.token, leaseTTL.Milliseconds()).Err()
			cancel()
		}
	}
}

// Release gives the node number back.
func (l *Lease) Release(ctx context.Context) error {
	close(l.stop)
	<-l.done
	return releaseScript.Run(ctx, l.rdb, []string{l.key}, l.token).Err()
}
