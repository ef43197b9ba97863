package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/text"
)

// TokenParam is the query parameter that may carry the access token (browsers cannot set
// an Authorization header on a WebSocket). Sec-WebSocket-Protocol "bearer, <token>" is
// the other way.
const TokenParam = "access_token"

// Handler returns an echo handler that authenticates (optional: access token from the
// `access_token` query parameter or from Sec-WebSocket-Protocol "bearer, <token>"), checks
// the Origin allow-list, calls open, and on success upgrades and serves the connection:
// sends open's Welcome messages first, then the room's messages; client frames go to
// OnMessage. open returns an error (e.g. errs.NotFound) to refuse before upgrading; the
// error becomes the usual problem+json response.
//
// The token itself is verified by the application's authentication middleware (see
// TokenMiddleware, which hands it over as an Authorization header): a token that did not
// yield a verified principal is refused with 401, never downgraded to anonymous.
func (h *Hub) Handler(open func(c echo.Context, who Identity) (Room, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if !isUpgrade(req) {
			return ErrNotWebSocket.WithDetail("this endpoint speaks WebSocket only (GET with Upgrade: websocket)")
		}
		if !originAllowed(req, h.cfg.AllowedOrigins) {
			h.m.refusedOrigin.Inc()
			return ErrOriginRefused.WithDetail("the Origin %q may not open this WebSocket", text.Truncate(req.Header.Get("Origin"), 200))
		}
		who, err := identify(req)
		if err != nil {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer error="invalid_token"`)
			return err
		}
		who.IP = c.RealIP()
		if err := h.admit(who); err != nil {
			h.m.refusedCap.Inc()
			return err
		}
		upgraded := false
		defer func() {
			if !upgraded {
				h.release(who)
			}
		}()
		rm, err := open(c, who)
		if err != nil {
			return err
		}
		if err := checkRoomName(rm.Name); err != nil {
			return err
		}
		r, ok := h.admitRoom(rm.Name)
		if !ok {
			h.m.refusedRoom.Inc()
			return ErrRoomFull.WithDetail("this room has no space for more connections on this server; retry later").WithRetryAfter(5)
		}
		welcome := make([][]byte, 0, len(rm.Welcome))
		for _, w := range rm.Welcome {
			b, err := json.Marshal(w)
			if err != nil {
				h.leave(&conn{room: r}, false)
				return err
			}
			welcome = append(welcome, b)
		}

		// Join (and, for the room's first connection here, subscribe and wait for Redis
		// to confirm) before the upgrade: a client that has its 101 gets every message
		// published from then on. The welcome frames are queued first, so they precede every
		// room message; nothing is written before the upgrade.
		cn := &conn{hub: h, room: r, who: who, queue: welcome}
		ready, err := h.join(cn)
		if err != nil {
			h.log.Warn("realtime: join failed", "room", r.name, "error", err.Error())
			return errs.ErrUnavailable.WithDetail("real-time delivery is unavailable; retry later").WithRetryAfter(5)
		}
		select {
		case <-ready:
		case <-time.After(2 * time.Second): // Redis slow: serve anyway, at most once
		}

		// net/http clears the server's read and write deadlines on hijack, so
		// http.read_timeout/write_timeout do not cut the connection (TestOutlivesHTTPTimeouts).
		opts := &websocket.AcceptOptions{OriginPatterns: h.cfg.AllowedOrigins}
		if _, ok := protocolToken(req); ok {
			opts.Subprotocols = []string{"bearer"}
		}
		ws, err := websocket.Accept(c.Response(), req, opts)
		if err != nil {
			// Accept has answered the client already.
			h.leave(cn, true)
			return nil
		}
		upgraded = true
		ws.SetReadLimit(h.cfg.MaxMessageBytes)
		if !cn.attach(ws) { // dropped or shut down meanwhile
			h.leave(cn, true)
			h.release(who)
			_ = ws.Close(websocket.StatusTryAgainLater, "try again later")
			return nil
		}
		// The connection outlives the request: a goroutine of its own serves it, and the
		// request's goroutine returns, so its stack (grown through the middleware chain), the
		// echo context and the request's span are not held for the connection's lifetime.
		ctx := context.Background()
		if p, ok := authn.From(req.Context()); ok {
			ctx = authn.With(ctx, p)
		}
		h.watchExpiry(cn)
		go h.serve(ctx, cn, rm.OnMessage)
		return nil
	}
}

// serve runs one upgraded connection until it closes. ctx carries the caller's principal
// (authn) and no deadline: the connection ends by closing.
func (h *Hub) serve(ctx context.Context, c *conn, onMessage func(context.Context, Identity, []byte) error) {
	defer h.release(c.who)
	defer h.leave(c, true)
	defer c.stopExpiry()
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			c.close(websocket.StatusNormalClosure, "")
			return
		}
		h.m.in.Inc()
		if onMessage == nil {
			continue
		}
		if typ != websocket.MessageText {
			c.enqueue(h.errorFrame(errTextOnly))
			continue
		}
		if err := onMessage(ctx, c.who, data); err != nil {
			c.enqueue(h.errorFrame(err))
		}
	}
}

// errorFrame is the client-facing form of an OnMessage error.
func (h *Hub) errorFrame(err error) []byte {
	type frame struct {
		Type   string `json:"type"`
		Code   string `json:"code"`
		Detail string `json:"detail,omitempty"`
	}
	f := frame{Type: "error", Code: "internal", Detail: "the message could not be handled"}
	if e, ok := errs.As(err); ok {
		f.Code, f.Detail = e.Code, e.Detail
	} else {
		h.log.Error("realtime: message handler failed", "error", err.Error())
	}
	b, _ := json.Marshal(f)
	return b
}

// identify is the connection's caller: the principal the authentication middleware
// verified, anonymous when no token was sent, an error when a token was sent but not
// verified (no silent downgrade to anonymous).
func identify(req *http.Request) (Identity, error) {
	if p, ok := authn.From(req.Context()); ok {
		return Identity{UserID: p.UserID, SessionID: p.SessionID, ExpiresAt: p.ExpiresAt}, nil
	}
	if _, ok := protocolToken(req); ok {
		return Identity{}, ErrInvalidToken.WithDetail("the access token could not be verified")
	}
	if req.URL.Query().Has(TokenParam) || req.Header.Get(echo.HeaderAuthorization) != "" {
		return Identity{}, ErrInvalidToken.WithDetail("the access token could not be verified")
	}
	return Identity{}, nil
}

func isUpgrade(req *http.Request) bool {
	return req.Method == http.MethodGet && headerHasToken(req.Header, "Connection", "upgrade") &&
		headerHasToken(req.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// protocolToken reads Sec-WebSocket-Protocol "bearer, <token>".
func protocolToken(req *http.Request) (string, bool) {
	var protos []string
	for _, v := range req.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			protos = append(protos, strings.TrimSpace(p))
		}
	}
	for i, p := range protos {
		if strings.EqualFold(p, "bearer") && i+1 < len(protos) && protos[i+1] != "" {
			return protos[i+1], true
		}
	}
	return "", false
}

// originAllowed is websocket.Accept's own Origin rule, checked first so a refusal is a
// problem+json 403 like every other error: no Origin (not a browser) or the request's own
// host passes; otherwise the Origin's host (or scheme://host for patterns with "://") must
// match a pattern.
func originAllowed(req *http.Request, patterns []string) bool {
	origin := req.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, req.Host) {
		return true
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, err := matchOrigin(p, target); err == nil && ok {
			return true
		}
	}
	return false
}

func matchOrigin(pattern, target string) (bool, error) {
	return path.Match(strings.ToLower(pattern), strings.ToLower(target))
}

var errNoToken = errors.New("no token")

// liftToken moves a WebSocket handshake's access token (query parameter or subprotocol)
// into the Authorization header, where the authentication middleware verifies it like any
// other bearer token, and drops it from the URL so it reaches no log.
func liftToken(req *http.Request) error {
	if !isUpgrade(req) {
		return errNoToken
	}
	q := req.URL.Query()
	tok := q.Get(TokenParam)
	if q.Has(TokenParam) {
		q.Del(TokenParam)
		req.URL.RawQuery = q.Encode()
		req.RequestURI = req.URL.RequestURI()
	}
	if req.Header.Get(echo.HeaderAuthorization) != "" {
		return errNoToken
	}
	if p, ok := protocolToken(req); ok {
		tok = p
	}
	if tok == "" {
		return errNoToken
	}
	req.Header.Set(echo.HeaderAuthorization, "Bearer "+tok)
	return nil
}
