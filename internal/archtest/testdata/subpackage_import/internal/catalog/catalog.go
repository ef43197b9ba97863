package catalog

import (
	"example.com/shop/internal/order"
	"example.com/shop/internal/order/payment"
)

var _ order.Service
var _ payment.Gateway
