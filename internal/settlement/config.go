package settlement

import (
	"time"

	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/platform/config"
)

// Config is the module's configuration, the settlement.* keys (defaults in configs/mall.yaml).
type Config struct {
	// DefaultCommissionBP is the platform's commission rate in basis points for a line whose
	// merchant has no override and whose category chain states none; the order module
	// fixes it on the line at placement (order.CommissionDefault).
	DefaultCommissionBP int `mapstructure:"default_commission_bp" validate:"gte=0,lte=10000"`
	// HoldPeriod is how long after completion an order's money stays pending.
	HoldPeriod time.Duration `mapstructure:"hold_period" validate:"gte=0"`
	// ReleaseInterval is how often the release worker (leader-only) makes due pending
	// entries available; 0 disables it.
	ReleaseInterval time.Duration `mapstructure:"release_interval" validate:"gte=0"`
}

// ConfigSection is where Config comes from: the settlement.* subtree.
var ConfigSection = config.Section[Config]{Key: "settlement"}

// commissionDefault gives the order module the default rate from this module's config, so
// the order module reads no other module's configuration.
func commissionDefault(c Config) order.CommissionDefault {
	return order.CommissionDefault(c.DefaultCommissionBP)
}
