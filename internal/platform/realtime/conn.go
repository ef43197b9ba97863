package realtime

import (
	"context"
	"sync"

	"github.com/coder/websocket"
)

// conn is one client connection. Its reader is the HTTP handler's goroutine; a writer
// goroutine exists only while frames (or a ping) are waiting, so an idle connection costs
// one goroutine.
type conn struct {
	hub  *Hub
	ws   *websocket.Conn
	room *room
	who  Identity

	mu       sync.Mutex
	queue    [][]byte // frames waiting; shared, read-only
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
	if !c.writing {
		c.writing = true
		go c.writeLoop()
	}
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
		ctx, cancel := context.WithTimeout(context.Background(), c.hub.cfg.WriteTimeout)
		err := c.ws.Write(ctx, websocket.MessageText, frame)
		cancel()
		if err != nil {
			c.fail(func() { c.hub.m.writeDrops.Inc() }, websocket.StatusPolicyViolation, "write failed")
			return
		}
		c.hub.m.out.Inc()
	}
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
	c.hub.leave(c, true)
	c.close(code, reason)
}

// close closes the WebSocket once (with the close handshake); the reader then returns and
// leaves the room.
func (c *conn) close(code websocket.StatusCode, reason string) {
	c.closeOne.Do(func() {
		c.mu.Lock()
		c.dead = true
		c.queue = nil
		c.mu.Unlock()
		_ = c.ws.Close(code, reason)
	})
}
