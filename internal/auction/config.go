package auction

import (
	"time"

	"github.com/mallhq/mall/internal/platform/config"
)

// Config is the module's configuration, the auction.* keys (defaults in configs/mall.yaml).
type Config struct {
	// ScheduleInterval is how often the scheduler starts and ends due lots (and retries
	// winners' orders).
	ScheduleInterval time.Duration `mapstructure:"schedule_interval" validate:"gt=0"`
	// GateDisabled sends every bid to MySQL without the Redis pre-filter.
	GateDisabled bool `mapstructure:"gate_disabled"`
	// GateGrace keeps a lot open in the gate this long past its end (MySQL decides).
	GateGrace time.Duration `mapstructure:"gate_grace" validate:"gte=0"`
}

// ConfigSection is where Config comes from: the auction.* subtree.
var ConfigSection = config.Section[Config]{Key: "auction"}
