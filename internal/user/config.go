package user

import (
	"encoding/base64"
	"errors"
	"time"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/user/oidc"
)

// Config is the module's configuration, the auth.* keys (defaults in configs/mall.yaml).
type Config struct {
	JWT        JWTConfig     `mapstructure:"jwt"`
	RefreshTTL time.Duration `mapstructure:"refresh_ttl" validate:"min=1h"`
	Password   struct {
		// MaxConcurrentHashes bounds argon2id work in flight (each takes 19 MiB); 0 = GOMAXPROCS.
		MaxConcurrentHashes int `mapstructure:"max_concurrent_hashes" validate:"gte=0"`
	} `mapstructure:"password"`
	// Login limits failed password logins (guard.go; reasons in configs/mall.yaml).
	Login struct {
		Window                  time.Duration `mapstructure:"window" validate:"min=1m"`
		MaxFailuresPerAccountIP int           `mapstructure:"max_failures_per_account_ip" validate:"gt=0"`
		FreeFailures            int           `mapstructure:"free_failures" validate:"gt=0"`
		DelayBase               time.Duration `mapstructure:"delay_base" validate:"min=1ms"`
		DelayMax                time.Duration `mapstructure:"delay_max" validate:"min=1ms"`
		MaxFailuresPerIP        int           `mapstructure:"max_failures_per_ip" validate:"gt=0"`
		MaxFailuresPerAccount   int           `mapstructure:"max_failures_per_account" validate:"gt=0"`
		KnownIPTTL              time.Duration `mapstructure:"known_ip_ttl" validate:"min=1h"`
	} `mapstructure:"login"`
	// RefreshPerMinute bounds refreshes per session (refresh-token family).
	RefreshPerMinute int `mapstructure:"refresh_per_minute" validate:"gt=0"`
	// EncryptionKey is base64 of 32 bytes: AES-256-GCM for personal data at rest (phones).
	EncryptionKey string                `mapstructure:"encryption_key"`
	OIDC          []oidc.ProviderConfig `mapstructure:"oidc"`
	// Email is auth.email.*: verification and reset tokens (email.go).
	Email EmailConfig `mapstructure:"email"`
}

// JWTConfig is auth.jwt.*: the access tokens.
type JWTConfig struct {
	KeysDir   string        `mapstructure:"keys_dir" validate:"required"`
	Issuer    string        `mapstructure:"issuer" validate:"required"`
	Audience  string        `mapstructure:"audience" validate:"required"`
	AccessTTL time.Duration `mapstructure:"access_ttl" validate:"min=1m,max=1h"`
	// GenerateKey creates a signing key in KeysDir when it holds none (development).
	GenerateKey bool `mapstructure:"generate_key"`
}

// ConfigSection is where Config comes from: the auth.* subtree.
var ConfigSection = config.Section[Config]{Key: "auth"}

// devEncryptionKey is the default in configs/mall.yaml, refused in production.
const devEncryptionKey = "ZGV2LW9ubHktZW5jcnlwdGlvbi1rZXktMzJieXRlcyE="

// Check: a usable encryption key, valid OIDC providers, no development keys in production.
func (c Config) Check(app config.App) error {
	var errs []error
	if k, err := base64.StdEncoding.DecodeString(c.EncryptionKey); err != nil || len(k) != 32 {
		errs = append(errs, config.Invalid("encryption_key", "must be base64 of 32 bytes (openssl rand -base64 32)"))
	}
	if err := oidc.CheckProviders("oidc", c.OIDC); err != nil {
		errs = append(errs, err)
	}
	if app.IsProduction() {
		if c.EncryptionKey == devEncryptionKey {
			errs = append(errs, config.Invalid("encryption_key", "the development key is not allowed in production"))
		}
		if c.JWT.GenerateKey {
			errs = append(errs, config.Invalid("jwt.generate_key", "must be false in production (install keys in auth.jwt.keys_dir)"))
		}
	}
	return errors.Join(errs...)
}
