package user

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

// Phone numbers are encrypted at rest with AES-256-GCM under auth.encryption_key:
//
//	version (1 byte = 1) | key id (4 bytes) | nonce (12 random bytes) | ciphertext+tag
//
// The key id is the first 4 bytes of SHA-256 of the key, so a stored value names the key
// that decrypts it and a future rotation can keep old keys for reading. The additional data
// is the address ID: a ciphertext copied into another row does not decrypt.
const phoneFormatV1 = 1

var errPhoneDecrypt = errors.New("user: phone ciphertext does not decrypt")

type phoneCipher struct {
	current uint32
	aeads   map[uint32]cipher.AEAD
}

// newPhoneCipher takes base64 keys; the first encrypts, all decrypt.
func newPhoneCipher(keys ...string) (*phoneCipher, error) {
	pc := &phoneCipher{aeads: map[uint32]cipher.AEAD{}}
	for i, k := range keys {
		raw, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(raw) != 32 {
			return nil, errors.New("auth.encryption_key: must be base64 of 32 bytes")
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(raw)
		id := binary.BigEndian.Uint32(sum[:4])
		if i == 0 {
			pc.current = id
		}
		pc.aeads[id] = aead
	}
	if len(pc.aeads) == 0 {
		return nil, errors.New("auth.encryption_key: is required")
	}
	return pc, nil
}

func (pc *phoneCipher) seal(phone string, addressID int64) []byte {
	aead := pc.aeads[pc.current]
	out := make([]byte, 5, 5+aead.NonceSize()+len(phone)+aead.Overhead())
	out[0] = phoneFormatV1
	binary.BigEndian.PutUint32(out[1:5], pc.current)
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, []byte(phone), addressAD(addressID))
}

func (pc *phoneCipher) open(b []byte, addressID int64) (string, error) {
	if len(b) < 5 || b[0] != phoneFormatV1 {
		return "", errPhoneDecrypt
	}
	aead, ok := pc.aeads[binary.BigEndian.Uint32(b[1:5])]
	if !ok {
		return "", fmt.Errorf("%w: unknown key id %x", errPhoneDecrypt, b[1:5])
	}
	rest := b[5:]
	if len(rest) < aead.NonceSize()+aead.Overhead() {
		return "", errPhoneDecrypt
	}
	plain, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], addressAD(addressID))
	if err != nil {
		return "", errPhoneDecrypt
	}
	return string(plain), nil
}

func addressAD(id int64) []byte {
	ad := make([]byte, 0, 30)
	ad = append(ad, "user_addresses.phone:"...)
	return binary.BigEndian.AppendUint64(ad, uint64(id))
}
