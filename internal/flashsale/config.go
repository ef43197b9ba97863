package flashsale

import (
	"time"

	"github.com/mallhq/mall/internal/platform/config"
)

// Config is the module's configuration, the flash_sale.* keys (defaults in configs/mall.yaml).
type Config struct {
	// PaymentTimeout is how long a flash-sale order may stay unpaid (API.md: 5m).
	PaymentTimeout time.Duration `mapstructure:"payment_timeout" validate:"min=1m"`
	// IntakeRate bounds the orders per second the intake places on each replica, so the
	// order database sees a steady stream whatever the burst.
	IntakeRate int `mapstructure:"intake_rate" validate:"min=1"`
	// IntakeBatch is how many queued tickets of a partition the intake places together (one
	// pool transaction, one transaction per buyer shard, one ticket insert).
	IntakeBatch int `mapstructure:"intake_batch" validate:"min=1,max=500"`
	// MaxQueued bounds the accepted attempts of one sale waiting for the intake; more are
	// answered 429 with Retry-After.
	MaxQueued int `mapstructure:"max_queued" validate:"min=1"`
	// ProduceTimeout bounds queueing one attempt on Kafka; a produce that fails undoes the
	// gate's decrement and answers 503.
	ProduceTimeout time.Duration `mapstructure:"produce_timeout" validate:"min=100ms"`
	// SoldOutMemory is how long a replica refuses a sale it saw sold out from memory,
	// without asking Redis (units coming back reopen it after that).
	SoldOutMemory time.Duration `mapstructure:"sold_out_memory" validate:"gte=0"`
	// SweepInterval is how often the leader closes ended sales' pools and rebuilds gates.
	SweepInterval time.Duration `mapstructure:"sweep_interval" validate:"gte=0"`
}

// ConfigSection is where Config comes from: the flash_sale.* subtree.
var ConfigSection = config.Section[Config]{Key: "flash_sale"}
