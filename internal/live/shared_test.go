package live_test

import "testing"

// TestOneApp runs the tests that need nothing of their own but a merchant in one
// application (each subtest gets a fresh merchant, rooms and users), so the package does
// not pay an application start per test. Tests that assert on global state (public lists)
// or need their own configuration or replicas start their own.
func TestOneApp(t *testing.T) {
	t.Parallel()
	base := newEnv(t)
	for _, tt := range []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"RTMPNotifications", testRTMPNotifications},
		{"ConcurrentPublishOneWins", testConcurrentPublishOneWins},
		{"StreamKeyStoredHashedAndRotated", testStreamKeyStoredHashedAndRotated},
		{"PinRules", testPinRules},
		{"RoomAccessAndValidation", testRoomAccessAndValidation},
		{"RoomSocketWelcomePinAndChat", testRoomSocketWelcomePinAndChat},
		{"RoomSocketRefusals", testRoomSocketRefusals},
		{"ChatRateLimitPerUser", testChatRateLimitPerUser},
		{"ViewerCountPushed", testViewerCountPushed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, base.fork(t))
		})
	}
}
