package live

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/merchant"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/ratelimit"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/text"
	"github.com/mallhq/mall/internal/user"
)

// Broadcaster delivers messages to a room's WebSocket connections on every replica and
// counts them; *realtime.Hub is the one in the application.
type Broadcaster interface {
	Publish(ctx context.Context, room string, msg any) error
	Viewers(ctx context.Context, room string) (int64, error)
}

// HubRoom is the realtime room name of a live room.
func HubRoom(roomID int64) string { return "live:" + strconv.FormatInt(roomID, 10) }

// service implements Service.
type service struct {
	log     *slog.Logger
	st      *store
	cl      *sqldb.Cluster
	ids     *idgen.Generator
	outbox  outbox.Writer
	catalog catalog.Service
	merch   merchant.Service
	users   user.Service
	limiter *ratelimit.Limiter
	hub     Broadcaster
	cfg     Config
	m       *metrics
	now     func() time.Time
}

var _ Service = (*service)(nil)

func (s *service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// newKey returns a fresh stream key and its hash. The key is "lk_" and 160 random bits in
// lower-case base32: safe in an RTMP URL path, easy to paste.
func newKey() (key string, hash []byte) {
	b := make([]byte, keyBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	key = "lk_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
	return key, hashKey(key)
}

func hashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// validKey reports whether name can be a stream key at all, so garbage from the RTMP side
// is refused before a database round trip.
func validKey(name string) bool {
	if !strings.HasPrefix(name, "lk_") || len(name) > MaxKeyLen {
		return false
	}
	for _, c := range name[3:] {
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

func cleanTitle(t string) (string, error) {
	t = strings.TrimSpace(t)
	n := utf8.RuneCountInString(t)
	if !utf8.ValidString(t) || n == 0 || n > MaxTitleRunes || strings.ContainsFunc(t, unicode.IsControl) {
		return "", errs.ErrValidation.WithDetail("title must be 1 to %d characters without control characters", MaxTitleRunes).
			WithFields(errs.FieldError{Field: "title", Message: "must be 1 to " + strconv.Itoa(MaxTitleRunes) + " characters"})
	}
	return t, nil
}

func (s *service) Create(ctx context.Context, merchantID int64, in NewRoom) (Created, error) {
	if merchantID <= 0 {
		return Created{}, errs.ErrForbidden
	}
	title, err := cleanTitle(in.Title)
	if err != nil {
		return Created{}, err
	}
	if at := in.ScheduledAt; !at.IsZero() && (at.Before(s.now().Add(-time.Hour)) || at.After(s.now().AddDate(1, 0, 0))) {
		return Created{}, errs.ErrValidation.WithDetail("scheduled_at must be from an hour ago to a year ahead").
			WithFields(errs.FieldError{Field: "scheduled_at", Message: "must be from an hour ago to a year ahead"})
	}
	now := s.clock()
	r := roomRow{ID: s.ids.Next(0), MerchantID: merchantID, Title: title, Status: StatusScheduled,
		ScheduledAt: nullTime(in.ScheduledAt.UTC().Truncate(time.Microsecond)), Version: 1, CreatedAt: now, UpdatedAt: now}
	key, hash := newKey()
	err = s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		if err := s.st.insert(ctx, r, hash); err != nil {
			return err
		}
		return s.event(ctx, EventRoomCreated, r)
	})
	if err != nil {
		return Created{}, err
	}
	s.log.InfoContext(ctx, "live room created", "room_id", r.ID, "merchant_id", merchantID)
	return Created{Room: r.room(), StreamKey: key}, nil
}

func (s *service) RotateKey(ctx context.Context, merchantID, roomID int64) (Created, error) {
	key, hash := newKey()
	var r roomRow
	err := s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		var err error
		if r, err = s.st.lockMerchantRoom(ctx, merchantID, roomID); err != nil {
			return err
		}
		if r.Status != StatusScheduled {
			return ErrStatusConflict.WithDetail("only a scheduled room's stream key can be rotated; this room is %s", r.Status)
		}
		r.Version++
		r.UpdatedAt = s.clock()
		return s.st.setKey(ctx, r.ID, hash, r.UpdatedAt)
	})
	if err != nil {
		return Created{}, err
	}
	s.log.InfoContext(ctx, "live stream key rotated", "room_id", r.ID, "merchant_id", merchantID)
	return Created{Room: r.room(), StreamKey: key}, nil
}

func (s *service) MerchantRoom(ctx context.Context, merchantID, roomID int64) (Room, error) {
	r, err := s.st.merchantRoom(ctx, merchantID, roomID)
	if err != nil {
		return Room{}, err
	}
	room := r.room()
	room.ViewerCount, _ = s.Viewers(ctx, roomID)
	return room, nil
}

func beforeID(before int64) int64 {
	if before <= 0 {
		return 1<<63 - 1
	}
	return before
}

func (s *service) MerchantRooms(ctx context.Context, merchantID int64, status Status, limit int, before int64) ([]Room, error) {
	var rows []roomRow
	var err error
	if status == "" {
		rows, err = s.st.list(ctx, qMerchantRooms, merchantID, beforeID(before), limit)
	} else {
		rows, err = s.st.list(ctx, qMerchantRoomsStatus, merchantID, status, beforeID(before), limit)
	}
	return toRooms(rows), err
}

func toRooms(rows []roomRow) []Room {
	out := make([]Room, len(rows))
	for i, r := range rows {
		out[i] = r.room()
	}
	return out
}

func (s *service) Room(ctx context.Context, roomID int64) (Room, error) {
	r, err := s.st.room(ctx, roomID)
	if err != nil {
		return Room{}, err
	}
	if r.Status == StatusBanned || !s.merchantActive(ctx, r.MerchantID) {
		return Room{}, ErrNotFound
	}
	room := r.room()
	room.ViewerCount, err = s.Viewers(ctx, roomID)
	if err != nil {
		// The count is decoration; the room is still worth answering.
		s.log.WarnContext(ctx, "live viewers unavailable", "room_id", roomID, "err", err)
	}
	return room, nil
}

func (s *service) Rooms(ctx context.Context, status Status, limit int, before int64) ([]Room, error) {
	var rows []roomRow
	var err error
	switch status {
	case "":
		rows, err = s.st.list(ctx, qRoomsPublic, beforeID(before), limit)
	case StatusBanned:
		return []Room{}, nil
	default:
		rows, err = s.st.list(ctx, qRoomsStatus, status, beforeID(before), limit)
	}
	if err != nil {
		return nil, err
	}
	rooms := make([]Room, 0, len(rows))
	for _, row := range rows {
		// A suspended merchant's rooms leave the public lists, like its products (a page
		// may then be short; the cursor still moves on).
		if !s.merchantActive(ctx, row.MerchantID) {
			continue
		}
		r := row.room()
		if r.Status == StatusLive {
			r.ViewerCount, _ = s.Viewers(ctx, r.ID)
		}
		rooms = append(rooms, r)
	}
	return rooms, nil
}

// merchantActive asks the merchant module (its cached IsActive); an error counts as active
// so a merchant-module hiccup does not take live rooms down.
func (s *service) merchantActive(ctx context.Context, merchantID int64) bool {
	if s.merch == nil {
		return true
	}
	ok, err := s.merch.IsActive(ctx, merchantID)
	if err != nil {
		s.log.WarnContext(ctx, "live: merchant status unavailable", "merchant_id", merchantID, "err", err)
		return true
	}
	return ok
}

func (s *service) Viewers(ctx context.Context, roomID int64) (int64, error) {
	if s.hub == nil {
		return 0, nil
	}
	return s.hub.Viewers(ctx, HubRoom(roomID))
}

// change runs fn on the room locked in a main-database transaction; when fn reports a
// change, the row is saved with the event of that type in the same transaction, and the
// new state is broadcast after the commit.
func (s *service) change(ctx context.Context, lock func(ctx context.Context) (roomRow, error),
	fn func(r *roomRow) (event string, err error)) (roomRow, string, error) {
	var r roomRow
	var event string
	err := s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		var err error
		if r, err = lock(ctx); err != nil {
			return err
		}
		if event, err = fn(&r); err != nil || event == "" {
			return err
		}
		r.Version++
		r.UpdatedAt = s.clock()
		if err := s.st.save(ctx, r); err != nil {
			return err
		}
		return s.event(ctx, event, r)
	})
	if err != nil {
		return roomRow{}, "", err
	}
	if event != "" {
		s.m.transitions.WithLabelValues(event).Inc()
		s.log.InfoContext(ctx, "live room changed", "room_id", r.ID, "event", event, "status", r.Status)
		s.broadcastChange(ctx, event, r)
	}
	return r, event, nil
}

func (s *service) event(ctx context.Context, typ string, r roomRow) error {
	return s.outbox.Add(ctx, outbox.Event{Topic: Topic, AggregateID: strconv.FormatInt(r.ID, 10), Type: typ,
		Payload: RoomChanged{RoomID: r.ID, MerchantID: r.MerchantID, Status: r.Status,
			PinnedProductID: r.PinnedProductID, Version: r.Version, OccurredAt: r.UpdatedAt}})
}

func (s *service) merchantLock(merchantID, roomID int64) func(ctx context.Context) (roomRow, error) {
	return func(ctx context.Context) (roomRow, error) { return s.st.lockMerchantRoom(ctx, merchantID, roomID) }
}

func (s *service) Pin(ctx context.Context, merchantID, roomID, productID int64) (Room, error) {
	// The room first: another merchant's room answers 404 before anything about products.
	if _, err := s.st.merchantRoom(ctx, merchantID, roomID); err != nil {
		return Room{}, err
	}
	// The catalog's own read (never its tables); another merchant's product is its 404.
	p, err := s.catalog.MerchantProduct(ctx, merchantID, productID)
	if err != nil {
		return Room{}, err
	}
	if p.Status != catalog.StatusOnSale {
		return Room{}, ErrNotOnSale.WithDetail("product %d is %s; only an on_sale product can be pinned", productID, p.Status)
	}
	r, _, err := s.change(ctx, s.merchantLock(merchantID, roomID), func(r *roomRow) (string, error) {
		if !r.Status.Open() {
			return "", ErrRoomClosed.WithDetail("the room is %s", r.Status)
		}
		r.PinnedProductID = productID
		return EventProductPinned, nil
	})
	return r.room(), err
}

func (s *service) Unpin(ctx context.Context, merchantID, roomID int64) (Room, error) {
	r, _, err := s.change(ctx, s.merchantLock(merchantID, roomID), func(r *roomRow) (string, error) {
		if r.PinnedProductID == 0 {
			return "", nil
		}
		if !r.Status.Open() {
			return "", ErrRoomClosed.WithDetail("the room is %s", r.Status)
		}
		r.PinnedProductID = 0
		return EventProductUnpinned, nil
	})
	return r.room(), err
}

func (s *service) End(ctx context.Context, merchantID, roomID int64) (Room, error) {
	r, _, err := s.change(ctx, s.merchantLock(merchantID, roomID), func(r *roomRow) (string, error) {
		switch r.Status {
		case StatusEnded:
			return "", nil
		case StatusBanned:
			return "", ErrStatusConflict.WithDetail("the room was banned by the platform")
		}
		r.Status, r.EndedAt = StatusEnded, nullTime(s.clock())
		return EventRoomEnded, nil
	})
	return r.room(), err
}

func (s *service) Ban(ctx context.Context, roomID int64) (Room, error) {
	r, _, err := s.change(ctx, func(ctx context.Context) (roomRow, error) { return s.st.lockRoom(ctx, roomID) },
		func(r *roomRow) (string, error) {
			if r.Status == StatusBanned {
				return "", nil
			}
			if !r.EndedAt.Valid {
				r.EndedAt = nullTime(s.clock())
			}
			r.Status = StatusBanned
			return EventRoomBanned, nil
		})
	return r.room(), err
}

// keyLock locks the room of a publisher's key; anything that cannot be a key, or no room,
// is a refusal (nginx gets a 403 either way).
func (s *service) keyLock(p Publisher) func(ctx context.Context) (roomRow, error) {
	return func(ctx context.Context) (roomRow, error) {
		if p.App != s.cfg.ingestApp() || !validKey(p.Key) {
			return roomRow{}, ErrPublishRefused
		}
		r, err := s.st.lockByKey(ctx, hashKey(p.Key))
		if errors.Is(err, ErrNotFound) {
			return r, ErrPublishRefused
		}
		return r, err
	}
}

func (s *service) Publish(ctx context.Context, p Publisher) (Room, error) {
	// A suspended merchant may not go live. Asked before the transaction: the merchant
	// module's read must not join this module's transaction.
	suspended := false
	if p.App == s.cfg.ingestApp() && validKey(p.Key) {
		if r, err := s.st.byKey(ctx, hashKey(p.Key)); err == nil && !s.merchantActive(ctx, r.MerchantID) {
			suspended = true
		}
	}
	r, _, err := s.change(ctx, s.keyLock(p), func(r *roomRow) (string, error) {
		if suspended {
			return "", ErrPublishRefused.WithDetail("the merchant is suspended")
		}
		if r.Status != StatusScheduled {
			return "", ErrPublishRefused.WithDetail("the room is %s", r.Status)
		}
		r.Status, r.Publisher, r.StartedAt = StatusLive, text.Truncate(p.Client, 128), nullTime(s.clock())
		return EventRoomStarted, nil
	})
	result := "allowed"
	if err != nil {
		result = "refused"
		if !errors.Is(err, ErrPublishRefused) {
			result = "error"
		}
	}
	s.m.publish.WithLabelValues(result).Inc()
	if err != nil {
		s.log.InfoContext(ctx, "live publish refused", "app", p.App, "client", p.Client, "err", err)
		return Room{}, err
	}
	return r.room(), nil
}

func (s *service) Update(ctx context.Context, p Publisher) error {
	if p.App != s.cfg.ingestApp() || !validKey(p.Key) {
		return ErrPublishRefused
	}
	r, err := s.st.byKey(ctx, hashKey(p.Key))
	if errors.Is(err, ErrNotFound) {
		return ErrPublishRefused
	}
	if err != nil {
		return err
	}
	if r.Status != StatusLive || r.Publisher != text.Truncate(p.Client, 128) {
		s.m.publish.WithLabelValues("cut").Inc()
		return ErrPublishRefused.WithDetail("the room is %s", r.Status)
	}
	if !s.merchantActive(ctx, r.MerchantID) {
		s.m.publish.WithLabelValues("cut").Inc()
		return ErrPublishRefused.WithDetail("the merchant is suspended")
	}
	return nil
}

func (s *service) PublishDone(ctx context.Context, p Publisher) error {
	_, _, err := s.change(ctx, s.keyLock(p), func(r *roomRow) (string, error) {
		if r.Status != StatusLive || r.Publisher != text.Truncate(p.Client, 128) {
			return "", nil
		}
		r.Status, r.EndedAt = StatusEnded, nullTime(s.clock())
		return EventRoomEnded, nil
	})
	if errors.Is(err, ErrPublishRefused) {
		return nil // not a session we know: nothing to end
	}
	return err
}

func (s *service) Relay(ctx context.Context, app, name string) error {
	id, ok := strings.CutPrefix(name, "room-")
	roomID, err := strconv.ParseInt(id, 10, 64)
	if app != s.cfg.hlsApp() || !ok || err != nil || roomID <= 0 || PlaybackName(roomID) != name {
		return ErrPublishRefused
	}
	r, err := s.st.room(ctx, roomID)
	if errors.Is(err, ErrNotFound) {
		return ErrPublishRefused
	}
	if err != nil {
		return err
	}
	if r.Status != StatusLive {
		s.m.publish.WithLabelValues("relay_refused").Inc()
		return ErrPublishRefused.WithDetail("the room is %s", r.Status)
	}
	return nil
}
