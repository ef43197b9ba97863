package order

const (
	qInsert = "INSERT INTO order_orders (id, buyer_id) VALUES (?, ?)"
	qStock  = `
		SELECT available
		FROM stock_levels
		WHERE sku_id = ?`
	qOutbox = "INSERT INTO platform_outbox (event_id) VALUES (?)"
	qJoin   = "SELECT o.id FROM order_orders o " +
		"JOIN user_users u ON u.id = o.buyer_id"
)

func q(table string) string {
	return "DELETE FROM " + table + " WHERE id IN (SELECT id FROM stock_reservations)"
}
