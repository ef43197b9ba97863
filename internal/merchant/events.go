package merchant

import (
	"time"

	"github.com/mallhq/mall/internal/platform/kafkax"
)

// Topic carries every event of the merchant module, keyed by application ID for
// application events and by merchant ID for the others.
var Topic = kafkax.Topic("merchant")

// Event types.
const (
	EventApplicationSubmitted = "merchant.application_submitted"
	EventApproved             = "merchant.approved"
	EventRejected             = "merchant.rejected"
	EventSuspended            = "merchant.suspended"
	EventUnsuspended          = "merchant.unsuspended"
	EventStaffAdded           = "merchant.staff_added"
	// EventStaffRemoved compensates a staff_added whose role grant failed.
	EventStaffRemoved = "merchant.staff_removed"
	// EventCommissionChanged: an operator set or cleared the merchant's commission override.
	EventCommissionChanged = "merchant.commission_changed"
)

// ApplicationSubmitted is published when a user applies to open a merchant.
type ApplicationSubmitted struct {
	ApplicationID int64     `json:"application_id,string"`
	ApplicantID   int64     `json:"applicant_id,string"`
	ShopName      string    `json:"shop_name"`
	OccurredAt    time.Time `json:"occurred_at"`
}

// Approved is published when an application is approved and its merchant created.
type Approved struct {
	ApplicationID int64     `json:"application_id,string"`
	MerchantID    int64     `json:"merchant_id,string"`
	OwnerID       int64     `json:"owner_id,string"`
	ShopName      string    `json:"shop_name"`
	ReviewedBy    int64     `json:"reviewed_by,string"`
	OccurredAt    time.Time `json:"occurred_at"`
}

// Rejected is published when an application is rejected.
type Rejected struct {
	ApplicationID int64     `json:"application_id,string"`
	ApplicantID   int64     `json:"applicant_id,string"`
	Reason        string    `json:"reason"`
	ReviewedBy    int64     `json:"reviewed_by,string"`
	OccurredAt    time.Time `json:"occurred_at"`
}

// StatusChanged is the payload of merchant.suspended and merchant.unsuspended.
type StatusChanged struct {
	MerchantID int64     `json:"merchant_id,string"`
	Status     Status    `json:"status"`
	By         int64     `json:"by,string"`
	OccurredAt time.Time `json:"occurred_at"`
}

// CommissionChanged is the payload of merchant.commission_changed. CommissionRateBP is
// null when the override was cleared.
type CommissionChanged struct {
	MerchantID       int64     `json:"merchant_id,string"`
	CommissionRateBP *int      `json:"commission_rate_bp"`
	By               int64     `json:"by,string"`
	OccurredAt       time.Time `json:"occurred_at"`
}

// StaffChanged is the payload of merchant.staff_added and merchant.staff_removed.
type StaffChanged struct {
	MerchantID int64     `json:"merchant_id,string"`
	UserID     int64     `json:"user_id,string"`
	Role       StaffRole `json:"role"`
	By         int64     `json:"by,string"`
	OccurredAt time.Time `json:"occurred_at"`
}
