package catalog

import (
	"time"

	"github.com/mallhq/mall/internal/platform/config"
)

// Config is the module's configuration, the catalog.* keys (defaults in configs/mall.yaml).
type Config struct {
	// ReviewRequired makes submit go to pending_review; false puts products on sale at once.
	ReviewRequired bool `mapstructure:"review_required"`
	// DetailCache sizes the public product detail's two-level cache.
	DetailCache DetailCacheConfig `mapstructure:"detail_cache"`
}

// DetailCacheConfig sizes the detail cache (catalog.detail_cache.*).
type DetailCacheConfig struct {
	// L1Size is the number of products kept in process; 0 disables L1 (Redis only).
	L1Size int `mapstructure:"l1_size" validate:"gte=0"`
	// L1TTL bounds a replica's staleness if an invalidation message is lost; L2TTL is the
	// Redis lifetime, at least L1TTL.
	L1TTL time.Duration `mapstructure:"l1_ttl" validate:"gt=0"`
	L2TTL time.Duration `mapstructure:"l2_ttl"`
}

// ConfigSection is where Config comes from: the catalog.* subtree.
var ConfigSection = config.Section[Config]{Key: "catalog"}

// Check: the Redis copy must outlive the in-process one.
func (c Config) Check(config.App) error {
	if c.DetailCache.L2TTL < c.DetailCache.L1TTL {
		return config.Invalid("detail_cache.l2_ttl", "must be at least catalog.detail_cache.l1_ttl, got %s", c.DetailCache.L2TTL)
	}
	return nil
}
