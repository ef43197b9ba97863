package user

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Key files in auth.jwt.keys_dir:
//
//	<kid>.pem      Ed25519 private key (PKCS#8, "PRIVATE KEY"): can sign, and verifies
//	<kid>.pub.pem  Ed25519 public key (PKIX, "PUBLIC KEY"): verifies only
//	active         optional: the kid of the private key that signs
//
// Without an active file the signing key is the private key whose kid sorts last: generated
// kids are UTC timestamps (20250101T120000.123456Z-3f2a), so that is the newest. Name order
// rather than mtime, because every replica must pick the same key and copies (Kubernetes
// secrets, rsync) do not keep mtimes.
//
// Rotation: add the new private key (it signs from the next reload on), keep the old one, or
// only its .pub.pem, until every token it signed has expired (auth.jwt.access_ttl), then
// remove it. Keys are reloaded every keyReloadInterval and on SIGHUP; until then, and when
// the directory is unusable, the previous set stays in force.
const (
	activeFile        = "active"
	privateSuffix     = ".pem"
	publicSuffix      = ".pub.pem"
	keyReloadInterval = 30 * time.Second
)

var kidPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// keySet is one loaded state of the keys directory.
type keySet struct {
	signKID string
	signKey ed25519.PrivateKey
	verify  map[string]ed25519.PublicKey
	// digest identifies the directory's content, so an unchanged reload is a no-op.
	digest string
}

// keyring holds the current keySet; readers never lock.
type keyring struct {
	dir      string
	generate bool
	cur      atomic.Pointer[keySet]
}

// newKeyring loads dir, generating a key first when it holds none and generate is set.
func newKeyring(dir string, generate bool) (*keyring, error) {
	k := &keyring{dir: dir, generate: generate}
	if _, err := k.reload(); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *keyring) current() *keySet { return k.cur.Load() }

// reload reads the directory again; changed reports whether the set differs. On error the
// previous set stays.
func (k *keyring) reload() (changed bool, err error) {
	ks, err := loadKeySet(k.dir)
	if errors.Is(err, errNoSigningKey) && k.generate {
		if _, gerr := GenerateKey(k.dir); gerr != nil {
			return false, gerr
		}
		ks, err = loadKeySet(k.dir)
	}
	if err != nil {
		return false, err
	}
	old := k.cur.Load()
	if old != nil && old.digest == ks.digest {
		return false, nil
	}
	k.cur.Store(ks)
	return true, nil
}

var errNoSigningKey = errors.New("no signing key")

func loadKeySet(dir string) (*keySet, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("auth.jwt.keys_dir %s: %w (the directory does not exist)", dir, errNoSigningKey)
	}
	if err != nil {
		return nil, fmt.Errorf("auth.jwt.keys_dir: %w", err)
	}
	ks := &keySet{verify: map[string]ed25519.PublicKey{}}
	private := map[string]ed25519.PrivateKey{}
	digest := sha256.New()
	active := ""
	for _, e := range entries {
		name := e.Name()
		// Skip hidden entries: editors' swap files, Kubernetes' ..data links.
		if strings.HasPrefix(name, ".") || e.IsDir() {
			continue
		}
		path := filepath.Join(dir, name)
		switch {
		case name == activeFile:
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("auth.jwt.keys_dir: %w", err)
			}
			active = strings.TrimSpace(string(b))
			fmt.Fprintf(digest, "active=%s\n", active)
		case strings.HasSuffix(name, publicSuffix):
			kid := strings.TrimSuffix(name, publicSuffix)
			b, pub, err := readPublicKey(path)
			if err != nil {
				return nil, err
			}
			if !kidPattern.MatchString(kid) {
				return nil, fmt.Errorf("auth.jwt.keys_dir: %s: a kid is 1-64 of A-Z a-z 0-9 . _ -", name)
			}
			if _, dup := ks.verify[kid]; !dup {
				ks.verify[kid] = pub
			}
			fmt.Fprintf(digest, "pub %s %x\n", kid, sha256.Sum256(b))
		case strings.HasSuffix(name, privateSuffix):
			kid := strings.TrimSuffix(name, privateSuffix)
			b, priv, err := readPrivateKey(path)
			if err != nil {
				return nil, err
			}
			if !kidPattern.MatchString(kid) {
				return nil, fmt.Errorf("auth.jwt.keys_dir: %s: a kid is 1-64 of A-Z a-z 0-9 . _ -", name)
			}
			private[kid] = priv
			fmt.Fprintf(digest, "priv %s %x\n", kid, sha256.Sum256(b))
		}
	}
	for kid, priv := range private {
		pub := priv.Public().(ed25519.PublicKey)
		if other, ok := ks.verify[kid]; ok && !bytes.Equal(other, pub) {
			return nil, fmt.Errorf("auth.jwt.keys_dir: %s%s and %s%s hold different keys", kid, privateSuffix, kid, publicSuffix)
		}
		ks.verify[kid] = pub
	}
	if len(private) == 0 {
		return nil, fmt.Errorf("auth.jwt.keys_dir %s: %w (<kid>%s)", dir, errNoSigningKey, privateSuffix)
	}
	if active != "" {
		priv, ok := private[active]
		if !ok {
			return nil, fmt.Errorf("auth.jwt.keys_dir: %s names %q, but %s%s is not there", activeFile, active, active, privateSuffix)
		}
		ks.signKID, ks.signKey = active, priv
	} else {
		kids := make([]string, 0, len(private))
		for kid := range private {
			kids = append(kids, kid)
		}
		slices.Sort(kids)
		ks.signKID = kids[len(kids)-1]
		ks.signKey = private[ks.signKID]
	}
	ks.digest = hex.EncodeToString(digest.Sum(nil))
	return ks, nil
}

func readPEM(path, wantType string) ([]byte, *pem.Block, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("auth.jwt.keys_dir: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != wantType {
		return nil, nil, fmt.Errorf("auth.jwt.keys_dir: %s: want one PEM block of type %q", filepath.Base(path), wantType)
	}
	return b, blk, nil
}

func readPrivateKey(path string) ([]byte, ed25519.PrivateKey, error) {
	b, blk, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("auth.jwt.keys_dir: %s: %w", filepath.Base(path), err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("auth.jwt.keys_dir: %s: %T is not an Ed25519 key (tokens are EdDSA only)", filepath.Base(path), k)
	}
	return b, priv, nil
}

func readPublicKey(path string) ([]byte, ed25519.PublicKey, error) {
	b, blk, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, nil, err
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("auth.jwt.keys_dir: %s: %w", filepath.Base(path), err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, nil, fmt.Errorf("auth.jwt.keys_dir: %s: %T is not an Ed25519 key (tokens are EdDSA only)", filepath.Base(path), k)
	}
	return b, pub, nil
}

// GenerateKey writes a new Ed25519 private key to dir (created 0700 when missing) as
// <kid>.pem (0600) and returns the kid, a UTC timestamp that sorts after every earlier
// generated kid. It never overwrites a file.
func GenerateKey(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("auth.jwt.keys_dir: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", err
	}
	suffix := make([]byte, 2)
	_, _ = rand.Read(suffix)
	// Fixed width, so name order is time order; the suffix keeps two replicas generating in
	// the same microsecond apart.
	kid := time.Now().UTC().Format("20060102T150405.000000Z") + "-" + hex.EncodeToString(suffix)
	// Write a hidden temp file, then link it into place: a reader never sees half a key, and
	// the link fails rather than replacing an existing key.
	tmp, err := os.CreateTemp(dir, ".key-*")
	if err != nil {
		return "", fmt.Errorf("auth.jwt.keys_dir: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", err
	}
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Link(tmp.Name(), filepath.Join(dir, kid+privateSuffix)); err != nil {
		return "", fmt.Errorf("auth.jwt.keys_dir: %w", err)
	}
	return kid, nil
}
