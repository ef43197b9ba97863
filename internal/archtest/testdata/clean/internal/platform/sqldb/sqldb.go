package sqldb

func Ext() {}
