// The composition root may wire sub-packages.
package main

import (
	_ "example.com/shop/internal/order"
	_ "example.com/shop/internal/order/payment"
)

func main() {}
