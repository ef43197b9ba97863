package stock

import (
	"example.com/shop/internal/platform/sqldb"
)

func open(c *sqldb.Cluster) *sqldb.Cluster { return c.For("order") }
