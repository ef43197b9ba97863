// Package app is the composition root: it may wire any package, sub-packages included.
package app

import (
	_ "example.com/shop/internal/order/payment"
	_ "example.com/shop/internal/platform/outbox"
	_ "example.com/shop/internal/stock/stocktest"
)
