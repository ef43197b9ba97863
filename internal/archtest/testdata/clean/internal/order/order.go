// Package order is a fake module whose imports and SQL follow every rule.
package order

import (
	"example.com/shop/internal/platform/sqldb"
	"example.com/shop/internal/stock"
)

const (
	qList = "SELECT id FROM order_orders WHERE buyer_id = ? ORDER BY created_at DESC"
	qAdd  = `
		INSERT INTO order_lines (order_id, sku_id)
		SELECT o.id, ? FROM order_orders o JOIN order_checkouts c ON c.id = o.checkout_id`
	msg = "order: read from the stock service, never from its tables"
)

var _ = sqldb.Ext

// scope: the module's own transactions (tx-scope).
func scope(c *sqldb.Cluster) *sqldb.Cluster { return c.For("order") }

var _ stock.Service
