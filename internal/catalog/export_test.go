package catalog

// SetSkipInvalidation makes svc (the module's own Service) skip its post-commit detail
// invalidations, as a crash between commit and invalidation would, and/or the detail
// cache consumer's, so a test can exercise one path alone.
func SetSkipInvalidation(svc Service, postCommit, consumer bool) {
	s := svc.(*service)
	s.testSkipInvalidate.Store(postCommit)
	s.testSkipConsumerInvalidate.Store(consumer)
}
