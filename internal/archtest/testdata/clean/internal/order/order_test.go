package order_test

import (
	"testing"

	"example.com/shop/internal/stock/stocktest"
)

// Tests may use another module's fakes and inspect any table.
const qEvents = "SELECT COUNT(*) FROM platform_outbox WHERE topic = 'mall.order.v1'"

func TestX(t *testing.T) { _ = stocktest.New() }
