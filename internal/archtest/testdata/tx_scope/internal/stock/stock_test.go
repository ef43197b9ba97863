package stock

import "example.com/shop/internal/platform/sqldb"

// A test scoping the cluster does not make the module's code scoped.
var _ = (*sqldb.Cluster).For

func scoped(c *sqldb.Cluster) *sqldb.Cluster { return c.For("stock") }
