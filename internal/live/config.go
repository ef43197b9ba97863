package live

import (
	"errors"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/mallhq/mall/internal/platform/config"
)

// Config is the module's configuration, the live.* keys (defaults in configs/mall.yaml).
type Config struct {
	// RTMPSecret authenticates nginx-rtmp's notifications (?secret= on /internal/rtmp/*).
	RTMPSecret string `mapstructure:"rtmp_secret" validate:"required"`
	// RTMPURL is the ingest base merchants publish to (rtmp://host:port/app); the stream
	// key is appended as the stream name, and its last path segment is the application
	// publishers must use.
	RTMPURL string `mapstructure:"rtmp_url"`
	// HLSURL is the public playback base; a room plays at HLSURL/room-<id>.m3u8.
	HLSURL string `mapstructure:"hls_url"`
	// HLSPushURL is where an ingest nginx reaches its own HLS application: on_publish
	// answers a redirect to HLSPushURL/room-<id>, and nginx-rtmp relays the stream there.
	HLSPushURL string `mapstructure:"hls_push_url"`
	// ChatMaxRunes bounds one chat message (before HTML is stripped).
	ChatMaxRunes int `mapstructure:"chat_max_runes" validate:"min=1,max=2000"`
	// ChatPerMinute and ChatBurst are each user's chat rate limit (GCRA, per user).
	ChatPerMinute int `mapstructure:"chat_per_minute" validate:"min=1"`
	ChatBurst     int `mapstructure:"chat_burst" validate:"min=1"`
	// ViewersInterval is how often the viewer count is pushed to each live room.
	ViewersInterval time.Duration `mapstructure:"viewers_interval" validate:"min=100ms"`
}

// ConfigSection is where Config comes from: the live.* subtree.
var ConfigSection = config.Section[Config]{Key: "live"}

// devRTMPSecret is the default in configs/mall.yaml, refused in production.
const devRTMPSecret = "dev-rtmp-secret"

// Check: both RTMP URLs name distinct applications, playback is http(s), and the
// development secret stays out of production.
func (c Config) Check(app config.App) error {
	var errs []error
	ingest, ok := rtmpApp(c.RTMPURL)
	if !ok {
		errs = append(errs, config.Invalid("rtmp_url", "must be an rtmp://host:port/app URL naming an application, got %q", c.RTMPURL))
	}
	if hls, ok := rtmpApp(c.HLSPushURL); !ok || hls == ingest {
		errs = append(errs, config.Invalid("hls_push_url", "must be an rtmp://host:port/app URL naming an application other than rtmp_url's, got %q", c.HLSPushURL))
	}
	if u, err := url.Parse(c.HLSURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, config.Invalid("hls_url", "must be an http(s):// URL, got %q", c.HLSURL))
	}
	if app.IsProduction() && c.RTMPSecret == devRTMPSecret {
		errs = append(errs, config.Invalid("rtmp_secret", "the development secret is not allowed in production"))
	}
	return errors.Join(errs...)
}

// rtmpApp is the application an rtmp://host/app URL names.
func rtmpApp(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "rtmp" || u.Host == "" {
		return "", false
	}
	app := path.Base(strings.TrimRight(u.Path, "/"))
	if app == "." || app == "/" || app == "" {
		return "", false
	}
	return app, true
}

// ingestApp is the RTMP application publishers must use: RTMPURL's last path segment.
func (c Config) ingestApp() string { a, _ := rtmpApp(c.RTMPURL); return a }

// hlsApp is the ingest's own HLS application: HLSPushURL's last path segment.
func (c Config) hlsApp() string { a, _ := rtmpApp(c.HLSPushURL); return a }

// rtmpBase and hlsPushBase are the URLs without a trailing slash.
func (c Config) rtmpBase() string    { return strings.TrimRight(c.RTMPURL, "/") }
func (c Config) hlsPushBase() string { return strings.TrimRight(c.HLSPushURL, "/") }

// HLSURLOf is the room's playlist URL.
func (c Config) HLSURLOf(roomID int64) string {
	return strings.TrimRight(c.HLSURL, "/") + "/" + PlaybackName(roomID) + ".m3u8"
}
