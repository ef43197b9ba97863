// Package mailtest is an in-process SMTP server (github.com/emersion/go-smtp) for tests: it
// speaks the protocol to the real client, keeps every delivered message and lets a test wait
// for the one sent to an address.
package mailtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is a delivered message, its body decoded.
type Message struct {
	From    string
	To      []string
	Subject string
	Header  netmail.Header
	Text    string
}

// Server collects messages.
type Server struct {
	srv  *smtp.Server
	addr string

	mu      sync.Mutex
	msgs    []Message
	changed chan struct{}
	// Refuse makes every RCPT fail with a temporary error while set (retry tests).
	refuse bool
}

// Start runs a server on a free loopback port until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{addr: l.Addr().String(), changed: make(chan struct{})}
	s.srv = smtp.NewServer(backend{s})
	s.srv.Domain = "localhost"
	s.srv.ReadTimeout, s.srv.WriteTimeout = 10*time.Second, 10*time.Second
	s.srv.MaxMessageBytes = 1 << 20
	go func() { _ = s.srv.Serve(l) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

// Addr is host:port for mail.smtp_addr (with mail.tls "none").
func (s *Server) Addr() string { return s.addr }

// SetRefuse makes deliveries fail (421) until called with false.
func (s *Server) SetRefuse(v bool) {
	s.mu.Lock()
	s.refuse = v
	s.mu.Unlock()
}

// Messages returns what was delivered to to so far ("" = everything).
func (s *Server) Messages(to string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.msgs {
		if to == "" || containsFold(m.To, to) {
			out = append(out, m)
		}
	}
	return out
}

// Wait returns the n-th (1-based) message delivered to to, waiting up to 10 s.
func (s *Server) Wait(t testing.TB, to string, n int) Message {
	t.Helper()
	m, err := s.WaitFor(context.Background(), to, n, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// WaitFor is Wait returning an error, for goroutines.
func (s *Server) WaitFor(ctx context.Context, to string, n int, timeout time.Duration) (Message, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if ms := s.Messages(to); len(ms) >= n {
			return ms[n-1], nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return Message{}, errors.New("mailtest: no message " + itoa(n) + " to " + to + " within the timeout")
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func (s *Server) deliver(m Message) {
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

type backend struct{ s *Server }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

type session struct {
	s    *Server
	from string
	to   []string
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	refuse := ss.s.refuse
	ss.s.mu.Unlock()
	if refuse {
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	msg, err := netmail.ReadMessage(r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(msg.Body)
	if err != nil {
		return err
	}
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		if body, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body))); err != nil {
			return err
		}
	}
	subj, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		subj = msg.Header.Get("Subject")
	}
	ss.s.deliver(Message{From: ss.from, To: append([]string(nil), ss.to...), Subject: subj, Header: msg.Header,
		Text: strings.ReplaceAll(string(body), "\r\n", "\n")})
	return nil
}
