//go:build unix

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// bleveFree reports errIndexInUse when another process holds the bleve index at path: its
// scorch root.bolt is flock'ed exclusively for as long as the index is open. It tries for
// up to wait and releases the probe lock before returning. A missing index is free.
func bleveFree(path string, wait time.Duration) error {
	f, err := os.Open(filepath.Join(path, "store", "root.bolt"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("search reindex: %w", err)
	}
	defer f.Close()
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("search reindex: lock %s: %w", f.Name(), err)
		}
		if time.Now().After(deadline) {
			return errIndexInUse
		}
		time.Sleep(50 * time.Millisecond)
	}
}
