package order

import "example.com/shop/internal/stock"

var _ stock.Service

type Service interface{}
