package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/catalog/search"
	"github.com/mallhq/mall/internal/merchant"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/kafkax"
	mlog "github.com/mallhq/mall/internal/platform/log"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/stock"
)

// searchModule wires product search into the catalog module: the Searcher (opened at
// startup, closed at stop), the Kafka indexer fed by catalog, stock and merchant events,
// GET /api/v1/search and the admin reindex route.
var searchModule = fx.Options(
	fx.Provide(
		newSearchRuntime,
		func(r *searchRuntime) search.Searcher { return r.idx },
		kafkax.AsHandler(newSearchConsumer),
		httpx.AsRoutes(newSearchHandler),
	),
)

// SearchGroup is the indexer's consumer group with Elasticsearch (one shared index, so the
// replicas share the work). With bleve every replica has its own index and must see every
// event: its group is SearchGroup + "." + a hash of the host name and the index path.
const SearchGroup = "mall.catalog.search"

// SearchConsumerGroup is the indexer's consumer group for the search configuration. The
// bleve group is stable across restarts (host name and absolute path), so a restarted
// replica resumes from its committed offsets.
func SearchConsumerGroup(cfg config.Search) (string, error) {
	if cfg.Engine == "elasticsearch" {
		return SearchGroup, nil
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("catalog: search consumer group: %w", err)
	}
	abs, err := filepath.Abs(cfg.Bleve.Path)
	if err != nil {
		return "", fmt.Errorf("catalog: search consumer group: %w", err)
	}
	sum := sha256.Sum256([]byte(host + "\x00" + filepath.Clean(abs)))
	return SearchGroup + "." + hex.EncodeToString(sum[:8]), nil
}

// searchOpenTimeout bounds opening the engine (Elasticsearch checks the cluster and may
// create the first index).
const searchOpenTimeout = 30 * time.Second

type searchParams struct {
	fx.In

	LC        fx.Lifecycle
	Config    config.Config
	DB        *sqldb.Cluster
	Stock     stock.Service
	Merchants merchant.Service `optional:"true"`
	Log       *slog.Logger     `optional:"true"`
}

// searchRuntime owns this replica's Searcher, the indexer that keeps it in step with
// MySQL, and background rebuilds.
type searchRuntime struct {
	idx     search.Searcher
	src     *SearchSource
	log     *slog.Logger
	engine  string
	indexer *searchIndexer

	ctx        context.Context // ends at stop: cancels a running rebuild
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	rebuilding atomic.Bool
}

func newSearchRuntime(p searchParams) (*searchRuntime, error) {
	log := mlog.OrDiscard(p.Log)
	src, err := NewSearchSource(p.DB, p.Stock, p.Merchants)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), searchOpenTimeout)
	defer cancel()
	idx, err := search.New(ctx, p.Config.Search)
	if err != nil {
		return nil, fmt.Errorf("catalog: open search index: %w", err)
	}
	engine := p.Config.Search.Engine
	if engine == "" {
		engine = "bleve"
	}
	r := &searchRuntime{idx: idx, src: src, log: log, engine: engine,
		indexer: &searchIndexer{src: src, idx: idx, log: log}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	p.LC.Append(fx.Hook{
		OnStart: func(context.Context) error {
			if engine == "bleve" {
				r.wg.Add(1)
				go func() {
					defer r.wg.Done()
					r.rebuildIfEmpty()
				}()
			}
			return nil
		},
		OnStop: func(ctx context.Context) error {
			r.cancel()
			done := make(chan struct{})
			go func() { r.wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				return fmt.Errorf("catalog: stop search: %w", ctx.Err())
			}
			return idx.Close()
		},
	})
	return r, nil
}

// rebuildIfEmpty fills an empty bleve index from MySQL: a bleve index belongs to its
// replica, so a new replica (or one whose index directory was lost) starts empty while its
// consumer group may already be past the events that would fill it.
func (r *searchRuntime) rebuildIfEmpty() {
	res, err := r.idx.Search(r.ctx, search.Query{Limit: 1})
	if err != nil {
		if r.ctx.Err() == nil {
			r.log.Error("search index check failed", "error", err)
		}
		return
	}
	if res.Total > 0 {
		return
	}
	r.log.Info("search index is empty: rebuilding it from MySQL in the background", "engine", r.engine)
	r.rebuild("startup")
}

// startRebuild rebuilds the index in the background unless a rebuild is running; it
// reports whether it started one.
func (r *searchRuntime) startRebuild(reason string) bool {
	if r.ctx.Err() != nil || !r.rebuilding.CompareAndSwap(false, true) {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer r.rebuilding.Store(false)
		r.rebuildLocked(reason)
	}()
	return true
}

// rebuild rebuilds the index now unless a rebuild is running.
func (r *searchRuntime) rebuild(reason string) {
	if !r.rebuilding.CompareAndSwap(false, true) {
		return
	}
	defer r.rebuilding.Store(false)
	r.rebuildLocked(reason)
}

func (r *searchRuntime) rebuildLocked(reason string) {
	start := time.Now()
	n, err := Reindex(r.ctx, r.idx, r.src)
	if err != nil {
		if r.ctx.Err() == nil {
			r.log.Error("search index rebuild failed", "reason", reason, "engine", r.engine, "error", err)
		}
		return
	}
	r.log.Info("search index rebuilt", "reason", reason, "engine", r.engine, "products", n,
		"took", time.Since(start).Round(time.Millisecond))
}

// searchIndexer applies events to the index by reloading the truth: which event arrived,
// in which order and how often does not matter.
type searchIndexer struct {
	src *SearchSource
	idx search.Searcher
	log *slog.Logger
}

// merchantBatch is how many of a merchant's products one sync covers.
const merchantBatch = 200

func newSearchConsumer(r *searchRuntime, cfg config.Config) (kafkax.Handler, error) {
	group, err := SearchConsumerGroup(cfg.Search)
	if err != nil {
		return kafkax.Handler{}, err
	}
	// No inbox: sync rewrites products from MySQL, so a redelivery only rewrites them again.
	// Of the stock events only those that may move the units sold change a document.
	return kafkax.Handler{Group: group, Topics: []string{Topic, stock.Topic, merchant.Topic}, Handle: r.indexer.handle,
		NoInbox: true, Wants: soldMayChange}, nil
}

// soldMayChange passes over stock events that cannot change a search document (holds,
// releases, stock set by the merchant: documents carry the units sold, not the stock).
func soldMayChange(ev kafkax.Envelope) bool {
	if ev.Type != stock.EventLevelChanged {
		return true
	}
	var l stock.LevelChanged
	if err := json.Unmarshal(ev.Payload, &l); err != nil {
		return true // handle logs and skips it
	}
	return l.SoldChanged()
}

// handle maps an event to the products it may have changed and syncs them. A payload that
// does not decode is logged and skipped: retrying cannot fix it.
func (x *searchIndexer) handle(ctx context.Context, ev kafkax.Envelope) error {
	decode := func(v any) bool {
		if err := json.Unmarshal(ev.Payload, v); err != nil {
			x.log.Error("search indexer: undecodable event skipped", "event_id", ev.ID, "event_type", ev.Type, "error", err)
			return false
		}
		return true
	}
	switch ev.Type {
	case EventProductChanged:
		var p ProductChanged
		if decode(&p) && p.ID > 0 {
			return x.sync(ctx, []int64{p.ID})
		}
	case stock.EventLevelChanged:
		var l stock.LevelChanged
		if !decode(&l) {
			return nil
		}
		id, found, err := x.src.st.skuProduct(ctx, l.SKUID)
		if err != nil {
			return fmt.Errorf("catalog: search indexer: %w", err)
		}
		if found {
			return x.sync(ctx, []int64{id})
		}
	case merchant.EventSuspended, merchant.EventUnsuspended:
		var m merchant.StatusChanged
		if !decode(&m) || m.MerchantID <= 0 {
			return nil
		}
		for after := int64(0); ; {
			ids, err := x.src.st.merchantProductIDs(ctx, m.MerchantID, after, merchantBatch)
			if err != nil {
				return fmt.Errorf("catalog: search indexer: %w", err)
			}
			if len(ids) == 0 {
				return nil
			}
			if err := x.sync(ctx, ids); err != nil {
				return err
			}
			after = ids[len(ids)-1]
		}
	}
	return nil
}

// maxSyncRounds bounds how often sync writes the same products while they keep changing.
const maxSyncRounds = 5

// sync makes the index agree with MySQL for ids. It reads the truth, writes it, and reads
// again: when the truth moved meanwhile it writes again. Two handlers racing on the same
// product (another partition, another replica) can therefore not leave the older state
// behind: whoever writes last reads after writing and repairs it.
func (x *searchIndexer) sync(ctx context.Context, ids []int64) error {
	var written []search.Product
	for round := 0; round <= maxSyncRounds; round++ {
		docs, remove, err := x.src.Docs(ctx, ids)
		if err != nil {
			return err
		}
		if round > 0 && sameDocs(docs, written) {
			return nil
		}
		if round == maxSyncRounds {
			break
		}
		if len(docs) > 0 {
			if err := x.idx.Index(ctx, docs...); err != nil {
				return fmt.Errorf("catalog: search indexer: %w", err)
			}
		}
		if len(remove) > 0 {
			if err := x.idx.Delete(ctx, remove...); err != nil {
				return fmt.Errorf("catalog: search indexer: %w", err)
			}
		}
		written = docs
	}
	return fmt.Errorf("catalog: search indexer: products %v kept changing while being indexed", ids)
}

func sameDocs(a, b []search.Product) bool {
	return slices.EqualFunc(a, b, func(x, y search.Product) bool {
		return x.ID == y.ID && x.MerchantID == y.MerchantID && x.BrandID == y.BrandID && x.CategoryID == y.CategoryID &&
			slices.Equal(x.CategoryPath, y.CategoryPath) && x.Title == y.Title && x.Subtitle == y.Subtitle &&
			x.PriceMin == y.PriceMin && x.PriceMax == y.PriceMax && x.Sales == y.Sales && x.CreatedAt.Equal(y.CreatedAt)
	})
}
