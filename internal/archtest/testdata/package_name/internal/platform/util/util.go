package util

func Must(err error) {}
