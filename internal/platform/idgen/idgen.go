// Package idgen mints 64-bit IDs that sort by time and carry a logical shard:
//
//	0 | 40 bits ms since 2025-01-01 | 8 bits node | 5 bits sequence | 10 bits logical shard
//
// so sqldb.Cluster.ForID finds an order's shard from its ID alone. Each replica needs its own
// node number (config app.node_id, or a lease from Redis, see Lease). When the sequence runs
// out inside a millisecond the generator borrows the next millisecond instead of sleeping;
// the logical clock catches up with the wall clock once the burst is over.
package idgen

import (
	"fmt"
	"sync"
	"time"
)

const (
	shardBits = 10
	seqBits   = 5
	nodeBits  = 8
	timeBits  = 40

	maxSeq  = 1<<seqBits - 1
	MaxNode = 1<<nodeBits - 1
)

// Epoch is the zero of the time component.
var Epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Generator is safe for concurrent use.
type Generator struct {
	node int64
	now  func() time.Time

	mu     sync.Mutex
	lastMs int64
	seq    int64
}

// New returns a generator for node 0..255.
func New(node int) (*Generator, error) {
	if node < 0 || node > MaxNode {
		return nil, fmt.Errorf("idgen: node %d out of range 0..%d", node, MaxNode)
	}
	return &Generator{node: int64(node), now: time.Now}, nil
}

// Next returns a new ID carrying the logical shard (0..1023).
func (g *Generator) Next(logicalShard int) int64 {
	g.mu.Lock()
	ms := g.now().Sub(Epoch).Milliseconds()
	if ms <= g.lastMs {
		ms = g.lastMs
		g.seq++
		if g.seq > maxSeq {
			ms++ // borrow the next millisecond
			g.seq = 0
		}
	} else {
		g.seq = 0
	}
	g.lastMs = ms
	seq := g.seq
	g.mu.Unlock()
	return ms<<(nodeBits+seqBits+shardBits) | g.node<<(seqBits+shardBits) | seq<<shardBits |
		int64(logicalShard&(1<<shardBits-1))
}

// Shard returns the logical shard an ID carries.
func Shard(id int64) int { return int(id & (1<<shardBits - 1)) }

// Time returns the millisecond an ID was minted in.
func Time(id int64) time.Time {
	return Epoch.Add(time.Duration(id>>(nodeBits+seqBits+shardBits)) * time.Millisecond)
}
