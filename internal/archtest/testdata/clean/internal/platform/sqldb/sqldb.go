package sqldb

func Ext() {}

type Cluster struct{}

func (c *Cluster) For(module string) *Cluster { return c }
