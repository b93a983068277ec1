//go:build !linux

package prober

import (
	"errors"
	"syscall"
)

// setDontFragment is only implemented on Linux.
func setDontFragment(syscall.Conn) error {
	return errors.New("dont_fragment is only supported on Linux")
}
