package live

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/microcosm-cc/bluemonday"

	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/ratelimit"
	mtext "github.com/mallhq/mall/internal/platform/text"
)

// ChatClass is the rate-limit class of chat messages, keyed by user.
const ChatClass = "live.chat"

// chatPolicy strips every tag; its output is HTML-escaped text, safe to insert as HTML and
// shown as is by clients that render text. A bluemonday policy is safe for concurrent use.
var chatPolicy = bluemonday.StrictPolicy()

// SanitizeChat turns raw client text into what the room sees: valid UTF-8 of at most
// maxRunes characters before stripping, no HTML, no control characters, trimmed and not
// empty.
func SanitizeChat(text string, maxRunes int) (string, error) {
	if !utf8.ValidString(text) {
		return "", ErrChatInvalid.WithDetail("chat text must be UTF-8")
	}
	if n := utf8.RuneCountInString(text); n > maxRunes {
		return "", ErrChatTooLong.WithDetail("chat text is %d characters; at most %d", n, maxRunes)
	}
	// Newlines and tabs become spaces; other control and format characters (bidi
	// overrides, zero-width joiners used to smuggle look-alikes) go.
	text = strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			return -1
		}
		return r
	}, text)
	out := strings.TrimSpace(chatPolicy.Sanitize(text))
	if out == "" {
		return "", ErrChatEmpty.WithDetail("chat text is empty once HTML is stripped")
	}
	return out, nil
}

// DisplayName is how a chatter appears to the room: the nickname with markup stripped
// (nicknames are free text), and masked ("l***i") when it is the default one, the email's
// local part, so the room never learns anyone's email address.
func DisplayName(nickname, email string) string {
	name := strings.TrimSpace(chatPolicy.Sanitize(nickname))
	local, _, _ := strings.Cut(email, "@")
	if local != "" && strings.EqualFold(strings.TrimSpace(nickname), local) {
		r := []rune(name)
		switch {
		case len(r) == 0:
		case len(r) <= 2:
			name = string(r[0]) + "***"
		default:
			name = string(r[0]) + "***" + string(r[len(r)-1])
		}
	}
	return name
}

// clientMessage is one client frame on /ws/live/{id}.
type clientMessage struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// ParseClientMessage decodes a client frame: {"type":"chat","text":"..."} and nothing else.
func ParseClientMessage(data []byte) (text string, err error) {
	var m clientMessage
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return "", ErrChatInvalid.WithDetail("a client message is a JSON object {\"type\":\"chat\",\"text\":\"...\"}")
	}
	if dec.More() {
		return "", ErrChatInvalid.WithDetail("one JSON object per message")
	}
	if m.Type != "chat" {
		return "", ErrChatInvalid.WithDetail("unknown message type %q; clients send only \"chat\"", mtext.Truncate(m.Type, 32))
	}
	return m.Text, nil
}

func (s *service) Chat(ctx context.Context, roomID, userID int64, text string) (ChatMessage, error) {
	if userID == 0 {
		s.m.chat.WithLabelValues("anonymous").Inc()
		return ChatMessage{}, ErrAuthRequired.WithDetail("log in to chat")
	}
	clean, err := SanitizeChat(text, s.cfg.ChatMaxRunes)
	if err != nil {
		s.m.chat.WithLabelValues("invalid").Inc()
		return ChatMessage{}, err
	}
	if s.limiter != nil {
		res, err := s.limiter.Allow(ctx, ChatClass, "user:"+strconv.FormatInt(userID, 10))
		if err != nil {
			return ChatMessage{}, err
		}
		if !res.Allowed {
			s.m.chat.WithLabelValues("rate_limited").Inc()
			secs := ratelimit.RetryAfterSeconds(res.RetryAfter)
			return ChatMessage{}, ErrChatRateLimit.WithDetail("too many messages; retry in %d s", secs).WithRetryAfter(secs)
		}
	}
	// The limit is taken before the room is read, so a flood costs Redis, not MySQL.
	r, err := s.st.room(ctx, roomID)
	if err != nil {
		return ChatMessage{}, err
	}
	if !r.Status.Open() {
		s.m.chat.WithLabelValues("closed").Inc()
		return ChatMessage{}, ErrRoomClosed.WithDetail("the room is %s", r.Status)
	}
	msg := ChatMessage{Type: "chat", RoomID: roomID, UserID: userID, Text: clean, At: s.clock()}
	if u, err := s.users.Get(ctx, userID); err == nil {
		msg.Nickname = DisplayName(u.Nickname, u.Email)
	}
	if s.hub != nil {
		if err := s.hub.Publish(ctx, HubRoom(roomID), msg); err != nil {
			return ChatMessage{}, errs.ErrUnavailable.WithDetail("the chat could not be delivered; try again")
		}
	}
	s.m.chat.WithLabelValues("sent").Inc()
	return msg, nil
}
