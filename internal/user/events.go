package user

import (
	"time"

	"github.com/mallhq/mall/internal/platform/kafkax"
)

// Topic carries every event of the user module, keyed by user ID.
var Topic = kafkax.Topic("user")

// Event types.
const (
	EventRegistered  = "user.registered"
	EventRoleGranted = "user.role_granted"
	EventRoleRevoked = "user.role_revoked"
)

// Registered is published when an account is created.
type Registered struct {
	UserID int64 `json:"user_id,string"`
	// Via is "password", "oidc:<provider>" or "admin_cli".
	Via        string    `json:"via"`
	OccurredAt time.Time `json:"occurred_at"`
}

// RoleGranted is published when a role binding is added (the audit trail of access).
type RoleGranted struct {
	UserID     int64 `json:"user_id,string"`
	Role       Role  `json:"role"`
	MerchantID int64 `json:"merchant_id,string"`
	// GrantedBy is the admin who granted it; 0 for the system (another module, the CLI).
	GrantedBy  int64     `json:"granted_by,string"`
	OccurredAt time.Time `json:"occurred_at"`
}

// RoleRevoked is published when a role binding is removed; the user's sessions end with it.
type RoleRevoked struct {
	UserID     int64 `json:"user_id,string"`
	Role       Role  `json:"role"`
	MerchantID int64 `json:"merchant_id,string"`
	// RevokedBy is the admin who revoked it; 0 for the system (another module).
	RevokedBy  int64     `json:"revoked_by,string"`
	OccurredAt time.Time `json:"occurred_at"`
}
