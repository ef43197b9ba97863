// Package payment is a sub-package of order: it may import its own module freely.
package payment

import (
	"example.com/shop/internal/order"
	"example.com/shop/internal/stock"
)

const qPay = "UPDATE order_payments SET status = ? WHERE id = ?"

var _ order.Service
var _ stock.Service
