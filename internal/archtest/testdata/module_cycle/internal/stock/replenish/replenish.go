package replenish

import "example.com/shop/internal/order"

var _ order.Service
