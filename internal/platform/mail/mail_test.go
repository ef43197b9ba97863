package mail_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/mail"
	"github.com/mallhq/mall/internal/platform/mail/mailtest"
)

func TestSMTPDeliversToAServerThatSpeaksTheProtocol(t *testing.T) {
	srv := mailtest.Start(t)
	s, err := mail.New(mail.Config{SMTPAddr: srv.Addr(), From: "Mall <no-reply@mall.test>", TLS: "none", Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	text := "Hello 你好\nyour code: abc_DEF-123\n" + strings.Repeat("long line ", 20)
	if err := s.Send(context.Background(), mail.Message{To: "Ada@Example.com", Subject: "Verify 验证", Text: text}); err != nil {
		t.Fatal(err)
	}
	m := srv.Wait(t, "ada@example.com", 1)
	if m.From != "no-reply@mall.test" || m.Subject != "Verify 验证" || !strings.Contains(m.Text, "your code: abc_DEF-123") ||
		!strings.Contains(m.Text, "Hello 你好") || m.Header.Get("Message-Id") == "" {
		t.Fatalf("delivered %+v", m)
	}

	srv.SetRefuse(true)
	if err := s.Send(context.Background(), mail.Message{To: "b@example.com", Subject: "x", Text: "y"}); err == nil {
		t.Fatal("a refused recipient was reported as sent")
	}
}

func TestStartTLSIsRequiredByDefault(t *testing.T) {
	srv := mailtest.Start(t) // offers no STARTTLS
	s, err := mail.New(mail.Config{SMTPAddr: srv.Addr(), From: "no-reply@mall.test", TLS: "starttls", Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), mail.Message{To: "a@example.com", Subject: "x", Text: "y"}); err == nil {
		t.Fatal("sent in plain text although starttls is required")
	}
	if len(srv.Messages("")) != 0 {
		t.Fatal("a message reached the server without TLS")
	}
}

func TestNotConfiguredSendsNothing(t *testing.T) {
	s, err := mail.New(mail.Config{From: "no-reply@mall.test", TLS: "starttls", Timeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Configured() || !errors.Is(s.Send(context.Background(), mail.Message{To: "a@example.com"}), mail.ErrNotConfigured) {
		t.Fatal("an unconfigured sender claimed to send")
	}
}

func TestCheck(t *testing.T) {
	prod := config.App{Env: "production"}
	dev := config.App{Env: "development"}
	tests := []struct {
		name string
		give mail.Config
		app  config.App
		want string // "" = valid
	}{
		{"defaults", mail.Config{From: "Mall <no-reply@mall.local>", TLS: "starttls"}, prod, ""},
		{"bad from", mail.Config{From: "nope", TLS: "starttls"}, dev, "from"},
		{"log in production", mail.Config{From: "a@b.c", TLS: "starttls", LogMessages: true}, prod, "log_messages"},
		{"log in development", mail.Config{From: "a@b.c", TLS: "starttls", LogMessages: true}, dev, ""},
		{"plain text credentials", mail.Config{SMTPAddr: "smtp.example.com:25", From: "a@b.c", TLS: "none", Username: "u", Password: "p"}, dev, "tls"},
		{"plain text relay in production", mail.Config{SMTPAddr: "smtp.example.com:25", From: "a@b.c", TLS: "none"}, prod, "tls"},
		{"loopback relay in production", mail.Config{SMTPAddr: "127.0.0.1:25", From: "a@b.c", TLS: "none"}, prod, ""},
		{"username without password", mail.Config{From: "a@b.c", TLS: "tls", Username: "u"}, dev, "username"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.give.Check(tt.app)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Key != tt.want {
				t.Fatalf("Check = %v, want an error on %s", err, tt.want)
			}
		})
	}
}
