// Package mail sends e-mail over SMTP (github.com/wneessen/go-mail). Modules queue their
// messages in their own outbox tables and send them from a worker through a Sender; this
// package knows nothing of what they say.
package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/platform/config"
)

// Config is the mail.* keys (defaults in configs/mall.yaml).
type Config struct {
	// SMTPAddr is host:port of the submission server; empty: nothing is sent (messages stay
	// queued) unless LogMessages is set.
	SMTPAddr string `mapstructure:"smtp_addr" validate:"omitempty,hostname_port"`
	// From is the sender, an RFC 5322 address ("Mall <no-reply@example.com>").
	From     string `mapstructure:"from" validate:"required,max=254"`
	Username string `mapstructure:"username" validate:"max=254"`
	Password string `mapstructure:"password" validate:"max=254"`
	// TLS is "starttls" (STARTTLS required, port 587), "tls" (implicit TLS, port 465) or
	// "none" (plain text: a local relay or a test sink).
	TLS     string        `mapstructure:"tls" validate:"oneof=starttls tls none"`
	Timeout time.Duration `mapstructure:"timeout" validate:"min=1s,max=5m"`
	// LogMessages logs every message, secrets in it included, instead of sending it when no
	// SMTPAddr is set: development only, refused in production.
	LogMessages bool `mapstructure:"log_messages"`
}

// ConfigSection is the mail.* subtree.
var ConfigSection = config.Section[Config]{Key: "mail"}

// Check: a parseable sender, no logged messages in production, no credentials or plain
// text to anything but a loopback relay in production.
func (c Config) Check(app config.App) error {
	var errs []error
	if _, err := netmail.ParseAddress(c.From); err != nil {
		errs = append(errs, config.Invalid("from", "must be an e-mail address (%v)", err))
	}
	if (c.Username == "") != (c.Password == "") {
		errs = append(errs, config.Invalid("username", "username and password go together"))
	}
	loopback := false
	if host, _, err := net.SplitHostPort(c.SMTPAddr); err == nil {
		ip := net.ParseIP(host)
		loopback = host == "localhost" || (ip != nil && ip.IsLoopback())
	}
	if c.TLS == "none" && c.Username != "" && !loopback {
		errs = append(errs, config.Invalid("tls", "credentials are never sent in plain text: use starttls or tls"))
	}
	if app.IsProduction() {
		if c.LogMessages {
			errs = append(errs, config.Invalid("log_messages", "must be false in production (messages carry secrets)"))
		}
		if c.TLS == "none" && c.SMTPAddr != "" && !loopback {
			errs = append(errs, config.Invalid("tls", "none is only allowed to a loopback relay in production"))
		}
	}
	return errors.Join(errs...)
}

// Message is one plain-text e-mail.
type Message struct {
	To      string
	Subject string
	Text    string
}

// Sender delivers messages.
type Sender interface {
	// Send delivers m or returns why not; ErrNotConfigured when no server is configured.
	Send(ctx context.Context, m Message) error
	// Configured reports whether Send can succeed at all.
	Configured() bool
}

// ErrNotConfigured: mail.smtp_addr is empty, so nothing can be sent.
var ErrNotConfigured = errors.New("mail: mail.smtp_addr is not set")

// Module provides the Sender for the mail.* section.
var Module = fx.Module("mail", fx.Provide(ConfigSection.From, New))

// New returns the Sender cfg describes: SMTP, the development log, or none.
func New(cfg Config, log *slog.Logger) (Sender, error) {
	switch {
	case cfg.SMTPAddr != "":
		return newSMTP(cfg)
	case cfg.LogMessages:
		if log == nil {
			log = slog.Default()
		}
		return logSender{log: log}, nil
	default:
		return noSender{}, nil
	}
}

type smtpSender struct {
	cfg  Config
	opts []gomail.Option
	host string
}

func newSMTP(cfg Config) (*smtpSender, error) {
	host, portS, err := net.SplitHostPort(cfg.SMTPAddr)
	if err != nil {
		return nil, fmt.Errorf("mail: smtp_addr: %w", err)
	}
	port, err := strconv.Atoi(portS)
	if err != nil {
		return nil, fmt.Errorf("mail: smtp_addr port: %w", err)
	}
	opts := []gomail.Option{gomail.WithPort(port), gomail.WithTimeout(cfg.Timeout)}
	switch cfg.TLS {
	case "tls":
		opts = append(opts, gomail.WithSSL())
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(cfg.Username), gomail.WithPassword(cfg.Password))
	}
	// Fail on a bad option now, not at the first message.
	if _, err := gomail.NewClient(host, opts...); err != nil {
		return nil, fmt.Errorf("mail: client: %w", err)
	}
	return &smtpSender{cfg: cfg, opts: opts, host: host}, nil
}

func (s *smtpSender) Configured() bool { return true }

func (s *smtpSender) Send(ctx context.Context, m Message) error {
	msg := gomail.NewMsg()
	if err := msg.From(s.cfg.From); err != nil {
		return fmt.Errorf("mail: from: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return fmt.Errorf("mail: to: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	// One connection per message: mails are rare (registration, reset), and a fresh client
	// keeps no state between goroutines.
	c, err := gomail.NewClient(s.host, s.opts...)
	if err != nil {
		return fmt.Errorf("mail: client: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("mail: send to %s: %w", s.cfg.SMTPAddr, err)
	}
	return nil
}

// logSender is development's mail server: the message goes to the log, said loudly.
type logSender struct{ log *slog.Logger }

func (logSender) Configured() bool { return true }

func (l logSender) Send(ctx context.Context, m Message) error {
	l.log.WarnContext(ctx, "mail: not sent, logged (mail.log_messages is on: development only)",
		"to", m.To, "subject", m.Subject, "text", m.Text)
	return nil
}

type noSender struct{}

func (noSender) Configured() bool { return false }

func (noSender) Send(context.Context, Message) error { return ErrNotConfigured }
