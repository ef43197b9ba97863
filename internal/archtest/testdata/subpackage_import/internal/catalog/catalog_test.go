package catalog_test

import (
	"example.com/shop/internal/order/ordertest"
	"example.com/shop/internal/order/payment"
)

var _ = ordertest.New
var _ payment.Gateway
