// Package outbox owns platform_outbox.
package outbox

const qAdd = "INSERT INTO platform_outbox (event_id, topic) VALUES (?, ?)"
