package stock

import (
	"time"

	"github.com/mallhq/mall/internal/platform/config"
)

// Config is the module's configuration, the stock.* keys (defaults in configs/mall.yaml).
type Config struct {
	// MaxHoldPerBuyer caps the unpaid units of one SKU one buyer may hold at a time, so one
	// buyer cannot lock a merchant's whole stock.
	MaxHoldPerBuyer int64 `mapstructure:"max_hold_per_buyer" validate:"min=1"`
	// SweepInterval is how often expired reservations are released; 0 disables the sweeper.
	SweepInterval time.Duration `mapstructure:"sweep_interval" validate:"gte=0"`
}

// ConfigSection is where Config comes from: the stock.* subtree.
var ConfigSection = config.Section[Config]{Key: "stock"}
