package cache

import "example.com/shop/internal/user"

var _ user.Service
