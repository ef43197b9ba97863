package misc_test
