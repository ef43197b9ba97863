package authn_test

import "example.com/shop/internal/user/usertest"

var _ = usertest.New
