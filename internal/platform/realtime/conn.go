package realtime

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

const reasonWriteFailed = "write failed"

// conn is one client connection. Its reader is a goroutine of its own (Hub.serve; the
// request's goroutine has returned); a writer goroutine exists only while frames (or a
// ping) are waiting, so an idle connection costs one goroutine.
type conn struct {
	hub *Hub
	// ws is set once, under mu, by attach (nil until the upgrade); the writer and reader
	// start after that.
	ws   *websocket.Conn
	room *room
	who  Identity
	// pingSlot is the slot of the hub's ping rounds this connection is pinged in (set by
	// join under the hub's lock).
	pingSlot int

	// writeStart is when the pending write began (Unix ns), 0 when none is.
	writeStart atomic.Int64

	mu       sync.Mutex
	expiry   *time.Timer // closes the connection when its token expires (watchExpiry)
	queue    [][]byte    // frames waiting; shared, read-only
	pingDue  bool
	writing  bool
	dead     bool
	closeOne sync.Once
}

// enqueue queues frame for the client without blocking. A client SendQueue frames behind
// is dropped: one slow reader must not hold up the room.
func (c *conn) enqueue(frame []byte) {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	if len(c.queue) >= c.hub.cfg.SendQueue {
		c.dead = true
		c.queue = nil
		c.mu.Unlock()
		c.hub.m.slowDrops.Inc()
		// Not here: the caller may hold the hub's lock.
		go c.drop(websocket.StatusPolicyViolation, "too slow: messages were not read in time")
		return
	}
	c.queue = append(c.queue, frame)
	c.startWriterLocked()
	c.mu.Unlock()
}

func (c *conn) requestPing() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return
	}
	c.pingDue = true
	c.startWriterLocked()
}

func (c *conn) startWriterLocked() {
	if !c.writing && c.ws != nil {
		c.writing = true
		go c.writeLoop()
	}
}

// attach gives c its upgraded WebSocket and starts writing what queued up while it joined;
// false when c was dropped meanwhile.
func (c *conn) attach(ws *websocket.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return false
	}
	c.ws = ws
	if len(c.queue) > 0 || c.pingDue {
		c.startWriterLocked()
	}
	return true
}

func (c *conn) writeLoop() {
	for {
		c.mu.Lock()
		if c.dead || (len(c.queue) == 0 && !c.pingDue) {
			c.writing = false
			c.mu.Unlock()
			return
		}
		var frame []byte
		ping := c.pingDue
		if ping {
			c.pingDue = false
		} else {
			frame = c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			if len(c.queue) == 0 {
				c.queue = nil
			}
		}
		c.mu.Unlock()

		if ping {
			ctx, cancel := context.WithTimeout(context.Background(), c.hub.cfg.PongTimeout)
			err := c.ws.Ping(ctx)
			cancel()
			if err != nil {
				c.fail(func() { c.hub.m.pongDrops.Inc() }, websocket.StatusPolicyViolation, "no pong")
				return
			}
			continue
		}
		// No deadline per write (a timer per frame per connection is a tenth of a
		// broadcast's CPU): the hub's sweeper drops a connection whose write has been
		// pending for WriteTimeout, which unblocks this one.
		c.writeStart.Store(time.Now().UnixNano())
		err := c.ws.Write(context.Background(), websocket.MessageText, frame)
		c.writeStart.Store(0)
		if err != nil {
			c.fail(func() { c.hub.m.writeDrops.Inc() }, websocket.StatusPolicyViolation, reasonWriteFailed)
			return
		}
		c.hub.m.out.Inc()
	}
}

// stuckSince reports whether a write has been pending since before t.
func (c *conn) stuckSince(t time.Time) bool {
	ws := c.writeStart.Load()
	return ws != 0 && ws < t.UnixNano()
}

// fail marks c dead (counting it once) and drops it.
func (c *conn) fail(count func(), code websocket.StatusCode, reason string) {
	c.mu.Lock()
	first := !c.dead
	c.dead = true
	c.queue = nil
	c.writing = false
	c.mu.Unlock()
	if first {
		count()
	}
	c.drop(code, reason)
}

// drop takes a failed connection out of its room at once (presence, fan-out), then closes
// it. The close handshake of a client that does not read can take coder/websocket's
// 5+5 s; the room does not wait for it.
func (c *conn) drop(code websocket.StatusCode, reason string) {
	lvl := slog.LevelInfo
	if reason == reasonWriteFailed { // usually the client just went away mid-write
		lvl = slog.LevelDebug
	}
	c.hub.log.Log(context.Background(), lvl, "realtime: connection dropped",
		"room", c.room.name, "reason", reason, "user_id", c.who.UserID)
	c.hub.leave(c, true)
	c.close(code, reason)
}

// close closes the WebSocket once (with the close handshake); the reader then returns and
// leaves the room. Before the upgrade it only marks c dead (the handler then refuses it).
func (c *conn) close(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	c.dead = true
	c.queue = nil
	ws := c.ws
	c.mu.Unlock()
	if ws == nil {
		return
	}
	c.closeOne.Do(func() { _ = ws.Close(code, reason) })
}
