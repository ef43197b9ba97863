package order

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/order/payment"
	"github.com/mallhq/mall/internal/platform/config"
)

// Config is the module's configuration, the order.* keys (defaults in configs/mall.yaml).
type Config struct {
	// PaymentTimeout is how long an order waits for its payment. At least one second, not
	// minutes: the crash-safety test (cmd/mall) runs the real binary through whole payment
	// timeouts; production values are tens of minutes.
	PaymentTimeout time.Duration `mapstructure:"payment_timeout" validate:"min=1s"`
	// HoldGrace is added to PaymentTimeout for the stock hold, so the timeout sweeper
	// cancels (and closes the gateway payment) before the stock module's sweeper releases.
	HoldGrace time.Duration `mapstructure:"hold_grace" validate:"gte=0"`
	// SweepInterval is how often each shard's unpaid orders past their deadline are
	// cancelled; 0 disables the sweeper.
	SweepInterval time.Duration `mapstructure:"sweep_interval" validate:"gte=0"`
	// PartitionMonths is how many months ahead partitions exist; PartitionInterval is how
	// often the module checks (0: only at startup; PartitionMonths 0: never).
	PartitionMonths   int           `mapstructure:"partition_months" validate:"gte=0"`
	PartitionInterval time.Duration `mapstructure:"partition_interval" validate:"gte=0"`
	// RefundRetryInterval is how often automatic refunds that failed transiently are
	// retried, and the first step of their backoff (doubling up to an hour); 0 means 1s.
	RefundRetryInterval time.Duration `mapstructure:"refund_retry_interval" validate:"gte=0"`
	// AutoCompleteAfter is how long after shipping an order the buyer has not confirmed
	// completes by itself (checked every SweepInterval). Tests that bypass validation set
	// it to 0 to keep shipped orders shipped.
	AutoCompleteAfter time.Duration `mapstructure:"auto_complete_after" validate:"min=1m"`
	// AfterSaleWindow is how long after completion the buyer may still ask for a refund.
	AfterSaleWindow time.Duration `mapstructure:"after_sale_window" validate:"gte=0"`
}

// ConfigSection is where Config comes from: the order.* subtree.
var ConfigSection = config.Section[Config]{Key: "order"}

// PaymentsConfig is the payment gateways' configuration, the payments.* keys, also owned
// by this module.
type PaymentsConfig struct {
	Sandbox SandboxConfig `mapstructure:"sandbox"`
	Alipay  AlipayConfig  `mapstructure:"alipay"`
}

// SandboxConfig is payments.sandbox.*.
type SandboxConfig struct {
	// Enabled allows POST /api/v1/payments/{id}/sandbox/complete (refused in production).
	Enabled bool `mapstructure:"enabled"`
	// Secret signs the sandbox gateway's notifications (HMAC-SHA256, at least 16 bytes).
	Secret string `mapstructure:"secret"`
}

// AlipayConfig is payments.alipay.*; the provider is enabled when AppID is set.
type AlipayConfig struct {
	AppID    string `mapstructure:"app_id"`
	SellerID string `mapstructure:"seller_id"`
	// PrivateKeyFile is our application's RSA private key (PEM); PublicKeyFile is Alipay's
	// public key for the app (PEM).
	PrivateKeyFile string `mapstructure:"private_key_file"`
	PublicKeyFile  string `mapstructure:"public_key_file"`
	GatewayURL     string `mapstructure:"gateway_url"`
	NotifyURL      string `mapstructure:"notify_url"`
	ReturnURL      string `mapstructure:"return_url"`
}

// PaymentsSection is where PaymentsConfig comes from: the payments.* subtree.
var PaymentsSection = config.Section[PaymentsConfig]{Key: "payments"}

// Check: the enabled gateways have what they need; no sandbox in production or next to a
// real provider, and https notifications in production.
func (c PaymentsConfig) Check(app config.App) error {
	var errs []error
	if c.Sandbox.Enabled && len(c.Sandbox.Secret) < 16 {
		errs = append(errs, config.Invalid("sandbox.secret", "must be at least 16 bytes when the sandbox is enabled"))
	}
	if a := c.Alipay; a.AppID != "" {
		if a.PrivateKeyFile == "" || a.PublicKeyFile == "" {
			errs = append(errs, config.Invalid("alipay.private_key_file", "private_key_file and public_key_file are required with app_id"))
		}
		if a.NotifyURL == "" {
			errs = append(errs, config.Invalid("alipay.notify_url", "is required with app_id (our POST /api/v1/payments/notify/alipay, absolute)"))
		}
	}
	// The sandbox pays any checkout for its buyer: never next to a gateway taking real money.
	if c.Sandbox.Enabled && c.Alipay.AppID != "" {
		errs = append(errs, config.Invalid("sandbox.enabled", "must be false when a real provider is configured (payments.alipay.app_id)"))
	}
	if app.IsProduction() {
		if c.Sandbox.Enabled {
			errs = append(errs, config.Invalid("sandbox.enabled", "must be false in production"))
		}
		if c.Alipay.AppID != "" && !strings.HasPrefix(c.Alipay.NotifyURL, "https://") {
			errs = append(errs, config.Invalid("alipay.notify_url", "must be an https:// URL in production"))
		}
	}
	return errors.Join(errs...)
}

// Gateways provides the payment providers PaymentsConfig enables (the sandbox when
// payments.sandbox.enabled, Alipay when payments.alipay.app_id is set) to the order
// module's ProvidersGroup. The application includes it next to Module; tests that bring
// their own provider leave it out.
var Gateways = fx.Provide(fx.Annotate(newGateways, fx.ResultTags(`group:"`+ProvidersGroup+`,flatten"`)))

func newGateways(cfg PaymentsConfig) ([]payment.Provider, error) {
	var out []payment.Provider
	if s := cfg.Sandbox; s.Enabled {
		sb, err := payment.NewSandbox(payment.SandboxConfig{Secret: s.Secret})
		if err != nil {
			return nil, fmt.Errorf("payments.sandbox: %w", err)
		}
		out = append(out, sb)
	}
	if a := cfg.Alipay; a.AppID != "" {
		priv, err := os.ReadFile(a.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("payments.alipay.private_key_file: %w", err)
		}
		pub, err := os.ReadFile(a.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("payments.alipay.public_key_file: %w", err)
		}
		ap, err := payment.NewAlipay(payment.AlipayConfig{AppID: a.AppID, SellerID: a.SellerID,
			PrivateKeyPEM: string(priv), AlipayPublicKeyPEM: string(pub), GatewayURL: a.GatewayURL,
			NotifyURL: a.NotifyURL, ReturnURL: a.ReturnURL})
		if err != nil {
			return nil, fmt.Errorf("payments.alipay: %w", err)
		}
		out = append(out, ap)
	}
	return out, nil
}
