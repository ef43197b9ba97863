package user

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// addresses keeps buyers' addresses on their shards, phone numbers sealed.
type addresses struct {
	st     *store
	cl     *sqldb.Cluster
	ids    *idgen.Generator
	phones *phoneCipher
	now    func() time.Time
}

func (s *addresses) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// addressInput is a new address or, with nil fields left alone, a change to one.
type addressInput struct {
	Name, Phone, Province, City, District, Detail *string
}

const (
	maxAddrField  = 64
	maxAddrDetail = 255
)

// normalizePhone drops spaces and dashes and accepts an optional + and 6 to 20 digits.
func normalizePhone(p string) (string, bool) {
	p = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, strings.TrimSpace(p))
	digits := strings.TrimPrefix(p, "+")
	if len(digits) < 6 || len(digits) > 20 {
		return p, false
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return p, false
		}
	}
	return p, true
}

// apply validates in over a (a new or stored address) and returns the result.
func (in addressInput) apply(a Address, creating bool) (Address, error) {
	var fields []errs.FieldError
	text := func(field string, v *string, max int, dst *string) {
		if v == nil {
			if creating {
				fields = append(fields, errs.FieldError{Field: field, Message: "is required"})
			}
			return
		}
		s, ok := cleanText(*v, max)
		switch {
		case !ok:
			fields = append(fields, errs.FieldError{Field: field, Message: fmt.Sprintf("must have at most %d characters and no control characters", max)})
		case s == "":
			fields = append(fields, errs.FieldError{Field: field, Message: "is required"})
		default:
			*dst = s
		}
	}
	text("name", in.Name, maxAddrField, &a.Name)
	if in.Phone != nil {
		if p, ok := normalizePhone(*in.Phone); ok {
			a.Phone = p
		} else {
			fields = append(fields, errs.FieldError{Field: "phone", Message: "must be 6 to 20 digits, optionally after +"})
		}
	} else if creating {
		fields = append(fields, errs.FieldError{Field: "phone", Message: "is required"})
	}
	text("province", in.Province, maxAddrField, &a.Province)
	text("city", in.City, maxAddrField, &a.City)
	text("district", in.District, maxAddrField, &a.District)
	text("detail", in.Detail, maxAddrDetail, &a.Detail)
	if len(fields) > 0 {
		names := make([]string, len(fields))
		for i, f := range fields {
			names[i] = f.Field
		}
		return a, errs.ErrValidation.WithDetail("invalid fields: %s", strings.Join(names, ", ")).WithFields(fields...)
	}
	return a, nil
}

func (s *addresses) toRow(a Address) addressRow {
	return addressRow{ID: a.ID, UserID: a.UserID, Name: a.Name, PhoneEnc: s.phones.seal(a.Phone, a.ID),
		Province: a.Province, City: a.City, District: a.District, Detail: a.Detail, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}

func (s *addresses) fromRow(r addressRow) (Address, error) {
	phone, err := s.phones.open(r.PhoneEnc, r.ID)
	if err != nil {
		return Address{}, fmt.Errorf("address %d: %w", r.ID, err)
	}
	return Address{ID: r.ID, UserID: r.UserID, Name: r.Name, Phone: phone, Province: r.Province, City: r.City,
		District: r.District, Detail: r.Detail, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}, nil
}

// AddAddress stores a new address on the user's shard; its ID carries the shard.
func (s *addresses) AddAddress(ctx context.Context, userID int64, in addressInput) (Address, error) {
	now := s.clock()
	a, err := in.apply(Address{ID: s.ids.Next(sqldb.LogicalShard(userID)), UserID: userID, CreatedAt: now, UpdatedAt: now}, true)
	if err != nil {
		return Address{}, err
	}
	err = s.cl.ForUser(userID).WithinTx(ctx, func(ctx context.Context) error {
		n, err := s.st.countAddresses(ctx, userID) // locks the user's range: the limit holds under races
		if err != nil {
			return err
		}
		if n >= MaxAddresses {
			return ErrAddressLimit.WithDetail("at most %d addresses; delete one first", MaxAddresses)
		}
		return s.st.insertAddress(ctx, s.toRow(a))
	})
	if err != nil {
		return Address{}, err
	}
	return a, nil
}

// UpdateAddress changes the fields set in in.
func (s *addresses) UpdateAddress(ctx context.Context, userID, addressID int64, in addressInput) (Address, error) {
	var out Address
	err := s.cl.ForUser(userID).WithinTx(ctx, func(ctx context.Context) error {
		r, err := s.st.address(ctx, userID, addressID)
		if err != nil {
			return err
		}
		a, err := s.fromRow(r)
		if err != nil {
			return err
		}
		if a, err = in.apply(a, false); err != nil {
			return err
		}
		a.UpdatedAt = s.clock()
		out = a
		return s.st.updateAddress(ctx, s.toRow(a))
	})
	return out, err
}

// DeleteAddress removes one of the user's addresses.
func (s *addresses) DeleteAddress(ctx context.Context, userID, addressID int64) error {
	return s.st.deleteAddress(ctx, userID, addressID)
}

// ListAddresses returns up to limit addresses with ID below before, newest first.
func (s *addresses) ListAddresses(ctx context.Context, userID, before int64, limit int) ([]Address, error) {
	rows, err := s.st.addresses(ctx, userID, before, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Address, 0, len(rows))
	for _, r := range rows {
		a, err := s.fromRow(r)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Address implements Service.
func (s *addresses) Address(ctx context.Context, userID, addressID int64) (Address, error) {
	r, err := s.st.address(ctx, userID, addressID)
	if err != nil {
		return Address{}, err
	}
	return s.fromRow(r)
}

// LatestAddress implements Service.
func (s *addresses) LatestAddress(ctx context.Context, userID int64) (Address, error) {
	as, err := s.ListAddresses(ctx, userID, 0, 1)
	if err != nil {
		return Address{}, err
	}
	if len(as) == 0 {
		return Address{}, ErrAddressNotFound
	}
	return as[0], nil
}
