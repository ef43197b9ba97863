package cache

import "time"

// SetTestHookAfterL2 makes c call f after the L2 read of every miss, before filling
// anything: tests block there to let an invalidation overtake a fill deterministically.
// Set it before the first Get.
func SetTestHookAfterL2[V any](c *Cache[V], f func(key string)) { c.testHookAfterL2 = f }

// L1Len is the number of entries in c's L1.
func L1Len[V any](c *Cache[V]) int { return c.l1.len() }

// SetPingInterval sets how long b's subscription may stay silent before b PINGs it (and
// twice that before it replaces it). Call before Start.
func SetPingInterval(b *Bus, d time.Duration) { b.ping = d }
